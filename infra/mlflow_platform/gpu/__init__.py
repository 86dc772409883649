"""The NVIDIA GPU device plugin (Helm release) and its tolerations."""
