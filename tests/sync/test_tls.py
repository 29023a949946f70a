"""HTTPS for real: the reference service under uvicorn with TLS, certificates made here (trustme)."""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.config import AgentConfig, SyncConfig
from scanner_agent.kernel import AuthError, ConfigError
from scanner_agent.outbox import Batch, BatchEvent, uuid7
from scanner_agent.sinks.trace_api import TraceApiClient
from scanner_agent.sync import LinkState, NetworkError
from scanner_agent.traceserver import TraceServerThread
from tests.support.agent import TOKEN
from tests.support.polling import eventually
from tests.support.syncing import (
    FAST_SYNC,
    assert_agent_delivered,
    assert_held_exactly_once,
    codes,
    scan_all,
)

trustme = pytest.importorskip("trustme")


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("dock-1.scanner-agent.test")
    paths = Pki(
        ca=tmp_path / "ca.pem",
        server=tmp_path / "server.pem",
        client_cert=tmp_path / "client.pem",
        client_key=tmp_path / "client.key",
        other_ca=tmp_path / "other-ca.pem",
    )
    ca.cert_pem.write_to_path(str(paths.ca))
    server.private_key_and_cert_chain_pem.write_to_path(str(paths.server))
    for blob in client.cert_chain_pems:
        blob.write_to_path(str(paths.client_cert), append=True)
    client.private_key_pem.write_to_path(str(paths.client_key))
    trustme.CA().cert_pem.write_to_path(str(paths.other_ca))
    return paths


@pytest.fixture
def https_server(tmp_path: Path, pki: Pki) -> Iterator[TraceServerThread]:
    with TraceServerThread(tmp_path / "tls.db", TOKEN, ssl_certfile=pki.server) as server:
        yield server


@pytest.fixture
def mtls_server(tmp_path: Path, pki: Pki) -> Iterator[TraceServerThread]:
    with TraceServerThread(
        tmp_path / "mtls.db",
        TOKEN,
        ssl_certfile=pki.server,
        ssl_ca_certs=pki.ca,
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    ) as server:
        yield server


def make_batch(*scanned: str) -> Batch:
    events = tuple(
        BatchEvent(i, uuid7(), c, "cn20", "ship", "B1", "2026-03-01T09:30:00+08:00", "test")
        for i, c in enumerate(scanned, 1)
    )
    return Batch(uuid7(), events, 0)


async def send(cfg: SyncConfig, batch: Batch, token: str = TOKEN) -> None:
    client = TraceApiClient(cfg, token=token, device_id="dock-1")
    try:
        results = await client.send_batch(batch)
    finally:
        await client.aclose()
    assert {r.status for r in results.values()} == {"accepted"}


async def test_verification_is_on_by_default_and_refuses_an_unknown_ca(
    https_server: TraceServerThread,
) -> None:
    assert https_server.url.startswith("https://")
    with pytest.raises(NetworkError, match="CERTIFICATE_VERIFY_FAILED"):
        await send(SyncConfig(url=https_server.url), make_batch(*codes(20, 2)))
    assert https_server.store.count_events() == 0


async def test_a_ca_bundle_of_another_ca_still_refuses(
    https_server: TraceServerThread, pki: Pki
) -> None:
    cfg = SyncConfig(url=https_server.url, ca_bundle=str(pki.other_ca))
    with pytest.raises(NetworkError, match="CERTIFICATE_VERIFY_FAILED"):
        await send(cfg, make_batch(*codes(21, 2)))


async def test_the_ca_bundle_makes_the_service_trusted(
    https_server: TraceServerThread, pki: Pki
) -> None:
    await send(SyncConfig(url=https_server.url, ca_bundle=str(pki.ca)), make_batch(*codes(22, 3)))
    assert https_server.store.count_events() == 3


async def test_mutual_tls_needs_the_client_certificate(
    mtls_server: TraceServerThread, pki: Pki
) -> None:
    without = SyncConfig(url=mtls_server.url, ca_bundle=str(pki.ca))
    with pytest.raises(NetworkError):
        await send(without, make_batch(*codes(23, 1)))
    assert mtls_server.store.count_events() == 0
    with_cert = SyncConfig(
        url=mtls_server.url,
        ca_bundle=str(pki.ca),
        client_cert=str(pki.client_cert),
        client_key=str(pki.client_key),
    )
    await send(with_cert, make_batch(*codes(23, 2)))
    assert mtls_server.store.count_events() == 2


def test_unreadable_tls_material_is_a_config_error_naming_sync(tmp_path: Path) -> None:
    cfg = SyncConfig(url="https://127.0.0.1:1", ca_bundle=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="sync"):
        TraceApiClient(cfg, token=TOKEN, device_id="d")


async def test_the_token_is_never_in_logs_or_error_text(
    https_server: TraceServerThread, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    secret = "s3cret-token-0f9e8d7c"
    cfg = SyncConfig(url=https_server.url, ca_bundle=str(pki.ca))
    client = TraceApiClient(cfg, token=secret, device_id="dock-1")
    try:
        with pytest.raises(AuthError) as info:
            await client.send_batch(make_batch(*codes(24, 1)))
        assert secret not in str(info.value)
        assert secret not in repr(client)
        client.set_token(TOKEN)
        await client.send_batch(make_batch(*codes(24, 1)))
    finally:
        await client.aclose()
    assert caplog.records  # the client did log (at debug)
    assert secret not in caplog.text
    assert TOKEN not in caplog.text


async def test_the_daemon_syncs_over_mutual_tls(
    mtls_server: TraceServerThread,
    pki: Pki,
    make_config: Callable[..., AgentConfig],
    start_agent: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sync = {
        **FAST_SYNC,
        "ca_bundle": str(pki.ca),
        "client_cert": str(pki.client_cert),
        "client_key": str(pki.client_key),
    }
    agent = await start_agent(make_config(mtls_server.url, sync=sync))
    scanned = codes(25, 120)
    await scan_all(agent, scanned)
    await agent.drained()
    held = assert_held_exactly_once(mtls_server.store, scanned)
    await assert_agent_delivered(agent, held)
    loop = agent.daemon.sync
    await eventually(lambda: loop.state is LinkState.ONLINE, what="online")
    status = await agent.daemon.status()
    assert TOKEN not in caplog.text + json.dumps(status)
