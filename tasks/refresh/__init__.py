"""The intraday refresh: re-score the users who just acted, between two nightly runs.

A refresh (``recpipe refresh``, flow ``recpipe-refresh``) works on the newest published
run date ``D``, under the same run lock as the nightly of ``D``:

1. **events** (:mod:`tasks.refresh.events`): the landing folder's new files, each file
   once (the landing manifest of ``tasks/sources/landing.py``), validated by the same
   suites as the nightly (quarantine, accounting); the accepted rows are kept as one batch
   file per refresh under ``<workspace>/refresh/run_date=D/``;
2. **scores** (:mod:`tasks.refresh.rescore`): the users of the batches not yet published
   get their history rebuilt (the night's validated rows + every batch of ``D``) and are
   scored by the current champion with the nightly's own functions (``tasks/scoring/``):
   same business rules, exclusions, cold-start strategy and reasons, with the night's
   item-side statistics (recent popularity, item-item similarity);
3. **upsert** (:mod:`tasks.refresh.upsert`): just those users' rows of ``D`` are replaced
   in the database (one transaction) and in the lake (one Delta commit), through a
   journal of its own, so readers see a user's old list or new list, never a mix.

It never trains and never moves the champion; the next nightly supersedes the refreshed
rows as usual. :mod:`tasks.refresh.run` puts the steps together and reports.
"""
