"""``python -m mini_flows``: the same as the ``mini-flows`` command."""

import sys

from mini_flows.cli import main

sys.exit(main())
