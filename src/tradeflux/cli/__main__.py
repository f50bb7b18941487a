"""``python -m tradeflux.cli``: the ``tradeflux`` command."""

import sys

from tradeflux.cli import main

sys.exit(main())
