"""The sink factory: one package per ``sync.protocol``, each built the same way, with its names.

Real parts: a real outbox file and its thread, the reference trace service on
loopback for the observer hook.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.config import PROTOCOLS, AgentConfig, config_from_dict
from scanner_agent.kernel import AuthError, ConfigError
from scanner_agent.outbox import Batch, BatchEvent, Outbox, OutboxThread, uuid7
from scanner_agent.sinks import SINK_PACKAGES, build_sink, sink_names, sink_package
from scanner_agent.sinks.alihealth import AliHealthSink
from scanner_agent.sinks.epcis import EpcisSink
from scanner_agent.sinks.trace_api import TraceApiClient
from scanner_agent.sync import PlatformAlarms, SinkContext, SinkNames
from scanner_agent.traceserver import TraceServerThread

ALI = {
    "url": "https://eco.taobao.com/router/rest",
    "app_key": "k",
    "app_secret_file": "/etc/scanner-agent/alihealth.secret",
    "ref_user_id": "r",
}
EPCIS = {
    "url": "https://epcis.example",
    "token_env": "EPCIS_TOKEN",
    "read_point": "urn:x:rp",
    "biz_location": "urn:x:loc",
}
SETTINGS: dict[str, dict[str, Any]] = {
    "trace-api": {"sync": {"url": "https://trace.example", "token_file": "/etc/t"}},
    "alihealth": {"sync": {"protocol": "alihealth"}, "alihealth": ALI},
    "epcis": {"sync": {"protocol": "epcis"}, "epcis": EPCIS},
}
SINK_TYPE = {"trace-api": TraceApiClient, "alihealth": AliHealthSink, "epcis": EpcisSink}


@pytest.fixture
def thread(tmp_path: Path) -> Iterator[OutboxThread]:
    outbox = Outbox.open(tmp_path / "outbox.db", min_free_bytes=0)
    worker = OutboxThread(outbox)
    try:
        yield worker
    finally:
        worker.shutdown()
        outbox.close()


def test_every_protocol_the_config_takes_has_a_sink_package_and_no_other() -> None:
    assert set(SINK_PACKAGES) == set(PROTOCOLS)
    for protocol in PROTOCOLS:
        package = sink_package(protocol)
        assert callable(package.build)
        assert callable(package.names)
        assert callable(package.checks)
        # doctor's lines for it: the service's own among them, the clock last.
        assert package.SERVICE_CHECK in package.CHECK_NAMES
        assert package.CHECK_NAMES[-1] == "clock"


def test_an_unknown_protocol_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^sync\.protocol: expected one of trace-api"):
        sink_package("mqtt")


@pytest.mark.parametrize("protocol", sorted(SETTINGS))
async def test_each_protocol_builds_its_own_sink_with_the_credential(
    protocol: str, thread: OutboxThread
) -> None:
    cfg = config_from_dict(SETTINGS[protocol])
    sink = build_sink(cfg, SinkContext(thread, "cred-1"))
    try:
        assert type(sink) is SINK_TYPE[protocol]
        assert isinstance(sink, PlatformAlarms) is (protocol == "alihealth")
        # The credential it was built with is the one in use: setting it again changes nothing.
        assert sink.set_token("cred-1") is False
        assert sink.set_token("cred-2") is True
    finally:
        await sink.aclose()


@pytest.mark.parametrize(
    ("protocol", "names"),
    [
        (
            "trace-api",
            SinkNames(
                "the trace service (https://trace.example)", "token", "sync.token_file (/etc/t)"
            ),
        ),
        (
            "alihealth",
            SinkNames(
                "码上放心 (https://eco.taobao.com/router/rest)",
                "app key or secret",
                "alihealth.app_secret_file (/etc/scanner-agent/alihealth.secret)",
            ),
        ),
        (
            "epcis",
            SinkNames("the EPCIS repository (https://epcis.example)", "token", "$EPCIS_TOKEN"),
        ),
    ],
)
def test_each_sink_names_its_service_credential_and_where_it_comes_from(
    protocol: str, names: SinkNames
) -> None:
    assert sink_names(config_from_dict(SETTINGS[protocol])) == names


async def test_an_observer_added_after_the_build_is_told_of_each_batch_request(
    tmp_path: Path, thread: OutboxThread
) -> None:
    observers: list[Any] = []
    with TraceServerThread(tmp_path / "trace.db", "tok") as server:
        cfg: AgentConfig = config_from_dict({"sync": {"url": server.url}})
        sink = build_sink(cfg, SinkContext(thread, "tok", observers=observers))
        seen: list[tuple[float, str]] = []
        observers.append(lambda seconds, outcome: seen.append((seconds, outcome)))
        event = BatchEvent(
            1,
            uuid7(),
            "81234567890123456789",
            "cn20",
            "ship",
            "B1",
            "2026-11-23T10:00:00.000+08:00",
            "t",
        )
        batch = Batch(uuid7(), (event,), 0)
        try:
            await sink.send_batch(batch, sink.encode(batch))
            sink.set_token("wrong")
            with pytest.raises(AuthError, match="refused the token"):
                await sink.send_batch(Batch(uuid7(), (event,), 0), None)
        finally:
            await sink.aclose()
    assert [outcome for _s, outcome in seen] == ["ok", "AuthError"]
    assert all(seconds >= 0 for seconds, _o in seen)
