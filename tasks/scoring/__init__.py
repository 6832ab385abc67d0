"""Scoring's parts: interactions mapped into a model's spaces and the statistics every
user shard shares (``inputs``), users ranked block by block by strategy (``ranking``), the
recommendations table streamed to Parquet (``table``), the item-item similarity kept by
content (``similarity_cache``). The stage that runs them in shards is tasks/score.py."""
