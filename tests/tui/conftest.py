"""The TUI tests need the [tui] extra (Textual); without it they are not collected."""

from __future__ import annotations

import importlib.util

collect_ignore_glob = [] if importlib.util.find_spec("textual") else ["test_*.py"]
