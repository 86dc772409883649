"""The tracking platform: PostgreSQL (MLflow's backend store), the cluster Secrets, the MLflow tracking server,
its schema-migration Job, the `training` user, and its disruption budget and spread.
"""
