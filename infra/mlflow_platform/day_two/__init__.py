"""Day two: database backups, `mlflow gc`, the ServiceMonitor, and the component that composes them."""
