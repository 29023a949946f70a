"""IP cameras: a stream URL opened through OpenCV's FFmpeg backend, and shown without its password.

Kept apart from :mod:`drivers.capture` so that the one process-wide FFmpeg setting
(an environment variable) and the masking of credentials live in one place.
"""

from __future__ import annotations

import os
import threading
from typing import Any

__all__ = ["STREAM_TIMEOUT_MS", "open_stream", "safe_url"]

STREAM_TIMEOUT_MS = 5000
"""Open and read timeout for network streams, so a dead camera is noticed and reopened."""
FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_ffmpeg_env_lock = threading.Lock()


def safe_url(device: str) -> str:
    """``device`` with a stream URL's password replaced by ``***`` (for logs, status, scans).

    >>> safe_url("rtsp://admin:s3cret@10.0.0.7:554/stream1")
    'rtsp://admin:***@10.0.0.7:554/stream1'
    >>> safe_url("/dev/video0")
    '/dev/video0'
    """
    from urllib.parse import urlsplit, urlunsplit

    if "://" not in device:
        return device
    parts = urlsplit(device)
    if parts.password is None:
        return device
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def open_stream(url: str, timeout_ms: int) -> Any:
    """A cv2.VideoCapture on an IP camera's stream through OpenCV's FFmpeg backend.

    RTSP goes over TCP (interleaved): the transport cameras and NVRs all offer, which
    loses no packet on a busy network (UDP loses a slice of a frame and smears it).
    FFmpeg takes its options from an environment variable that OpenCV reads at open,
    so the variable is set and restored under a lock.  Open and read both give up
    after ``timeout_ms``, so a camera that goes away is noticed.
    """
    import cv2

    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        timeout_ms,
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        timeout_ms,
    ]
    options = "rtsp_transport;tcp" if url.lower().startswith(("rtsp://", "rtsps://")) else ""
    with _ffmpeg_env_lock:
        before = os.environ.get(FFMPEG_OPTIONS_ENV)
        if options:
            os.environ[FFMPEG_OPTIONS_ENV] = options
        try:
            return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        finally:
            if before is None:
                os.environ.pop(FFMPEG_OPTIONS_ENV, None)
            else:
                os.environ[FFMPEG_OPTIONS_ENV] = before
