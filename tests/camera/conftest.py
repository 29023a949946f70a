"""Camera test fixtures: the shared zxing-cpp image corpus, skipped when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip(
    "cv2", reason="opencv-python-headless is not installed (pip install -e '.[dev]')"
)
pytest.importorskip("zxingcpp", reason="zxing-cpp is not installed (pip install -e '.[dev]')")

SHARED = Path(
    os.environ.get("SCANNER_AGENT_SHARED", Path(__file__).resolve().parents[2].parent / "shared")
)
"""``../shared`` beside the checkout, or ``$SCANNER_AGENT_SHARED``."""
CORPUS = SHARED / "corpus" / "zxing-samples"


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The zxing-cpp sample images (``<stem>.png|jpg|webp`` with ``<stem>.txt``)."""
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS} (set SCANNER_AGENT_SHARED to ../shared)")
    return CORPUS
