"""``python -m scanner_agent.cli``: the same as ``scanner-agent``."""

import sys

from scanner_agent.cli.app import main

sys.exit(main())
