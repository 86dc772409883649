"""Serving the registered champion in the cluster: the scoring Deployment and the CronJob that follows the alias."""
