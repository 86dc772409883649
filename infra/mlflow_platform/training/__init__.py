"""What training Jobs need: the submitter's Role and ServiceAccount, and the Job template `mlflow run` fills in."""
