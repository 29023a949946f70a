"""Reading the shared image corpus's expected texts."""

from __future__ import annotations

import re


def unescape(text: str) -> str:
    return re.sub(
        r"\\(\\|x[0-9a-f]{2})",
        lambda m: "\\" if m[1] == "\\" else chr(int(m[1][1:], 16)),
        text,
    )
