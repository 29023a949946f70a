"""Running a check as an unprivileged user, as an operator without root would."""

from __future__ import annotations

import os
import shutil

import pytest

NOBODY = 65534


def as_user() -> list[str]:
    """The command prefix that runs a subprocess as an unprivileged user."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) not installed: cannot drop root for the checks")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
