"""What a search fits, logs, registers and promotes.

- ``engines``       scikit-learn (CPU) or cuML (GPU) random forests behind one interface.
- ``served_model``  the pyfunc users call: label and/or probability of a late arrival (logged from code).
- ``registry``      MLflow plumbing: reach the server, log a model, register it, set an alias.
- ``promotion``     ``champion`` moves only to a model that beats it on the same test rows, else ``challenger``.
- ``plots``         the images a search leaves on its parent run.
"""
