"""Ray on KubeRay for parallel trials: the operator's Helm release and the RayCluster (CPU head, GPU workers)."""
