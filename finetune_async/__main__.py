"""``python -m finetune_async``: the command line."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
