"""Forgetting a user: remove their events and rows from every store the pipeline holds,
record the erasure, keep them out of later ingests, and prove it.

* ``ledger``: the erasure ledger (salted hashes only) and the check later ingests go through;
* ``forms``: the byte forms an id takes in files (raw, UTF-16, JSON-, URL-, HTML-escaped,
  base64) and boundary-aware matching;
* ``files``, ``text``: rewriting workspace files without the user (Parquet, vocabularies, sparse
  matrices, text, archives), each through a temporary file, fsync and a rename;
* ``stores``: the database tables (one transaction), the Delta tables (a delete commit,
  then vacuum and log cleanup) and other SQLite stores (MLflow, Prefect);
* ``models``: the MLflow model versions trained on the user's data;
* ``run``: the whole erasure through a journal, so a killed run is finished by a re-run;
* ``scan``: ``recpipe forget --verify``, every byte of the workspace searched.
"""
