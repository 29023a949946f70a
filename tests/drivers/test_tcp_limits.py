"""The TCP source's bookkeeping (drivers/tcp_limits.py), without sockets."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.tcp_limits import (
    LogThrottle,
    PeerBuckets,
    TcpLimits,
    TokenBucket,
    allowed,
    parse_allowlist,
)


@settings(max_examples=300)
@given(
    rate=st.floats(0.1, 100),
    burst=st.integers(1, 500),
    takes=st.lists(st.tuples(st.integers(1, 300), st.floats(0, 5)), min_size=1, max_size=60),
)
def test_a_peer_that_waits_as_told_never_gets_more_than_burst_plus_rate_times_time(
    rate: float, burst: int, takes: list[tuple[int, float]]
) -> None:
    """The budget is counted after the fact, so one batch may overdraw it; never more."""
    bucket = TokenBucket(rate, burst, now=0.0)
    now, total, largest = 0.0, 0, 0
    for count, gap in takes:
        now += gap
        now += bucket.wait_s(now)  # the source pauses the peer this long before reading
        bucket.take(count, now)
        total += count
        largest = max(largest, count)
        assert total <= burst + rate * now + largest + 1e-6 * total


def test_peer_table_stays_bounded_and_forgets_settled_peers_first() -> None:
    peers = PeerBuckets(rate=1.0, burst=10, max_peers=4)
    owing = peers.get("10.0.0.1", 0.0)
    owing.take(100, 0.0)
    for i in range(2, 50):
        peers.get(f"10.0.0.{i}", 1.0)
        assert len(peers) <= 4
    assert peers.get("10.0.0.1", 1.0) is owing  # it still owes: remembered


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("10.1.2.3", True),
        ("::ffff:10.1.2.3", True),
        ("10.1.3.3", False),
        ("fd00::5", True),
        ("fd01::5", False),
        ("not-an-address", False),
    ],
)
def test_allowlist(host: str, ok: bool) -> None:
    allow = parse_allowlist(["10.1.2.0/24", "fd00::/16"])
    assert allowed(host, allow) is ok
    assert allowed(host, ()) is True


def test_a_bad_allowlist_entry_is_named() -> None:
    with pytest.raises(ValueError, match=r"'10\.1\.2\.0/33' is not an address or CIDR"):
        parse_allowlist(["10.1.2.0/33"])


def test_keepalive_finds_a_dead_peer_within_one_and_a_half_times_keepalive_s() -> None:
    assert TcpLimits(keepalive_s=0).keepalive_params() is None
    for k in (1, 5, 60, 600):
        idle, interval, count = TcpLimits(keepalive_s=k).keepalive_params() or (0, 0, 0)
        assert idle == k
        assert idle + interval * count <= 1.5 * k + 3


def test_log_throttle_logs_the_first_then_one_summary_per_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.throttle")
    throttle = LogThrottle(logger, every_s=60)
    with caplog.at_level(logging.WARNING, logger="test.throttle"):
        for i in range(1000):
            throttle.note(f"refused {i}", now=i * 0.1)  # 100 s of refusals
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0] == "refused 0"
    assert lines[1].startswith("refused 600 (and 599 more like it")
    assert throttle.total == 1000
    throttle.flush(now=101.0)  # the flood stopped: its last minute is reported when due
    assert len(caplog.records) == 2
    throttle.flush(now=200.0)
    assert caplog.records[-1].getMessage().startswith("399 more like this in the last 60 s")
