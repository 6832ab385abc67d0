"""``python -m flows.cli ...``: the same as ``recpipe ...``."""

import sys

from flows.cli import main

sys.exit(main())
