"""The one backoff rule: capped exponential delays, with or without full jitter.

Used wherever the agent waits to try again: the sync loop's retries and the
sinks' polls of work the service does for us (:mod:`scanner_agent.sync`), a
hardware source reopening its device (:class:`drivers.device.Backoff`), and a
camera reopening its stream (:class:`drivers.capture.CaptureThread`).
"""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int, initial: float, maximum: float, rng: random.Random | None = None
) -> float:
    """The wait before try ``attempt + 1``: ``initial * 2**attempt``, at most ``maximum``.

    With ``rng``, full jitter (uniform in [0, that]): the sync loop's retries,
    so agents that lost the same service do not all come back at once.
    Without, the ceiling itself: polls of work the service is doing for us, and a
    local device's reopening (one device, no herd to spread).

    >>> [backoff_delay(n, 0.5, 5.0) for n in range(6)]
    [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    """
    ceiling = min(maximum, initial * (2 ** min(attempt, 30)))
    return ceiling if rng is None else rng.uniform(0, ceiling)
