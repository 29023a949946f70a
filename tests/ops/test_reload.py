"""Config reload (SIGHUP): what can change live changes, the rest is reported, bad files are refused."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.config import AgentConfig, load_config
from scanner_agent.daemon import Daemon
from scanner_agent.traceserver import TraceServerThread
from tests.support.agent import TOKEN
from tests.support.polling import eventually

WriteConfig = Callable[..., Path]


@pytest.fixture
def config_file(tmp_path: Path, token_file: Path) -> WriteConfig:
    def write(
        url: str = "http://127.0.0.1:9", *, token: Path = token_file, extra: str = ""
    ) -> Path:
        path = tmp_path / "agent.toml"
        path.write_text(
            f"""
device_id = "reload-dock"
{extra}
[outbox]
path = "{tmp_path / "outbox.db"}"
min_free_mb = 0
[sync]
url = "{url}"
token_file = "{token}"
idle_poll_s = 0.05
backoff_initial_s = 0.02
backoff_max_s = 0.2
token_poll_s = 30
"""
        )
        return path

    return write


@pytest.fixture
def root_level() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


async def start(start_agent: Any, path: Path) -> Any:
    agent = await start_agent(load_config(path))
    agent.daemon.config_path = path
    return agent


async def test_reload_moves_sync_to_a_new_url(
    config_file: WriteConfig, start_agent: Any, trace_server: TraceServerThread
) -> None:
    path = config_file("http://127.0.0.1:9")
    agent = await start(start_agent, path)
    assert (await agent.scan("81234560000000011234"))[0].startswith("ACK")
    config_file(trace_server.url)
    result = await agent.daemon.reload()
    assert result.error is None
    assert "sync.url" in result.applied
    assert result.needs_restart == ()
    await agent.drained()
    assert agent.daemon.cfg.sync.url == trace_server.url
    assert trace_server.store.events_after(0, 10)[0][0]["code"] == "81234560000000011234"


async def test_reload_reads_a_rotated_token_and_resumes(
    tmp_path: Path, config_file: WriteConfig, start_agent: Any, trace_server: TraceServerThread
) -> None:
    token = tmp_path / "rotating-token"
    token.write_text("old-revoked-token")
    token.chmod(0o600)
    agent = await start(start_agent, config_file(trace_server.url, token=token))
    assert (await agent.scan("81234560000000011234"))[0].startswith("ACK")
    sync = agent.daemon.sync
    await eventually(lambda: sync.state.value == "auth_failed", what="the refused token")
    token.write_text(TOKEN)
    result = await agent.daemon.reload()
    assert result.applied == ("sync.token",)
    await agent.drained()


async def test_a_bad_new_config_is_logged_and_the_old_one_kept(
    config_file: WriteConfig, start_agent: Any, caplog: pytest.LogCaptureFixture
) -> None:
    path = config_file()
    agent = await start(start_agent, path)
    before = agent.daemon.cfg
    path.write_text(path.read_text().replace("batch_size", "x") + "\n[sync\n")
    result = await agent.daemon.reload()
    assert result.error
    assert "TOML" in result.error
    path.write_text(path.read_text().replace("[sync\n", "") + "\n[scan]\naction = 'fly'\n")
    result = await agent.daemon.reload()
    assert result.error
    assert "scan.action" in result.error
    assert agent.daemon.cfg is before
    assert caplog.text.count("keeping the running config") == 2


async def test_an_unreadable_new_token_keeps_the_old_config(
    tmp_path: Path, config_file: WriteConfig, start_agent: Any
) -> None:
    agent = await start(start_agent, config_file())
    before = agent.daemon.cfg
    config_file(token=tmp_path / "missing-token")
    result = await agent.daemon.reload()
    assert result.error
    assert "token_file" in result.error
    assert agent.daemon.cfg is before


async def test_keys_that_need_a_restart_are_reported_and_log_level_applies(
    config_file: WriteConfig,
    start_agent: Any,
    caplog: pytest.LogCaptureFixture,
    root_level: None,
) -> None:
    path = config_file()
    agent = await start(start_agent, path)
    config_file(extra='log_level = "debug"\n[scan]\naction = "receive"')
    with path.open("a") as f:
        f.write('[[source]]\ntype = "tcp"\nlisten = "127.0.0.1:0"\n')
    result = await agent.daemon.reload()
    assert result.applied == ("log_level",)
    assert set(result.needs_restart) == {"scan.action", "source"}
    assert logging.getLogger().level == logging.DEBUG
    assert "restart the service to apply" in caplog.text
    # What needs a restart is not applied.
    assert agent.daemon.cfg.scan.action == "ship"
    assert agent.daemon.cfg.log_level == "debug"


async def test_reload_can_turn_metrics_on(config_file: WriteConfig, start_agent: Any) -> None:
    path = config_file()
    agent = await start(start_agent, path)
    assert agent.daemon.metrics_server is None
    config_file(extra='[metrics]\nlisten = "127.0.0.1:0"')
    result = await agent.daemon.reload()
    assert result.applied == ("metrics.listen",)
    assert agent.daemon.metrics_server is not None


async def test_reload_without_a_config_file_is_refused(
    make_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    agent = await start_agent(make_config(sync={"enabled": False}))
    assert (await agent.daemon.reload()).error


async def test_reload_before_start_is_refused(make_config: Callable[..., AgentConfig]) -> None:
    daemon = Daemon(make_config(), config_path="/nonexistent.toml")
    assert "not running" in ((await daemon.reload()).error or "")


async def test_a_reload_asked_for_during_start_up_runs_once_ready(
    config_file: WriteConfig, caplog: pytest.LogCaptureFixture, root_level: None
) -> None:
    path = config_file(extra='log_level = "debug"')
    cfg = load_config(path)
    daemon = Daemon(dataclasses.replace(cfg, log_level="info", sources=()), config_path=path)
    caplog.set_level(logging.INFO)
    daemon.request_reload()  # e.g. SIGHUP while the outbox is still opening
    task = asyncio.create_task(daemon.run())
    try:
        await eventually(lambda: "reload: applied log_level" in caplog.text, what="the reload")
    finally:
        daemon.request_stop()
        await task


async def test_the_admission_rule_is_always_the_running_sinks(
    tmp_path: Path, config_file: WriteConfig, start_agent: Any
) -> None:
    # The intake refuses what the sink in use cannot take.  A new sync.protocol needs a
    # restart (it builds a new sink); until then the old sink sends, so its rule holds,
    # and the restart brings the new sink with its own rule.
    gs1 = "(01)06901234567892(17)280500(10)4711(21)ABC12{}"
    path = config_file()
    agent = await start(start_agent, path)
    assert (await agent.scan(gs1.format(1)))[0].startswith("ACK ")  # Trace API takes GS1
    secret = tmp_path / "app_secret"
    secret.write_text("s\n")
    secret.chmod(0o600)
    text = path.read_text().replace("[sync]\n", '[sync]\nprotocol = "alihealth"\n')
    path.write_text(
        text + f'[alihealth]\napp_key = "k"\napp_secret_file = "{secret}"\nref_user_id = "r"\n'
    )
    result = await agent.daemon.reload()
    assert result.error is None
    assert "sync.protocol" in result.needs_restart
    assert (await agent.scan(gs1.format(2)))[0].startswith("ACK ")
    await agent.stop()
    agent = await start(start_agent, path)
    (reply,) = await agent.scan(gs1.format(3))
    assert reply.startswith("NAK ")
    assert "码上放心 takes only 20-digit trace codes" in reply
