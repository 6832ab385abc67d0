"""The sources interactions come from, by the name ``ingest.source`` and ``--source`` take."""

from typing import Literal

SourceName = Literal[
    "demo",
    "movielens-100k",
    "movielens-1m",
    "movielens-20m",
    "movielens-latest-small",
    "files",
    "landing",
]
