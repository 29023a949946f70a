"""``python -m scanner_agent``."""

import sys

from scanner_agent.cli import main

sys.exit(main())
