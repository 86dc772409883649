"""What a search fits, logs, registers and promotes.

- ``engines``       scikit-learn (CPU) or cuML (GPU) random forests behind one interface.
- ``served_model``  the pyfunc users call: label and/or probability of a late arrival (logged from code).
- ``registry``      MLflow plumbing: reach the server, log a model, register it, set an alias.
- ``promotion``     ``champion`` moves only to an eligible, comparable model that beats it beyond noise.
- ``objectives``    log_loss (default), roc_auc, pr_auc, accuracy: one definition each, vectorized over resamples.
- ``evidence``      the paired bootstrap interval of one model's improvement over another on the same rows.
- ``plots``         the images a search leaves on its parent run.
"""
