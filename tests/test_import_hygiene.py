"""The daemon core never loads the TUI toolkit (it runs on boxes with no terminal), and a
running daemon never loads the lab's servers (uvicorn, Starlette) or OpenCV, whatever it
syncs to: those belong to the emulators, the reference trace service and the camera driver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.net import free_port, listening
from tests.support.polling import wait_for

CORE_MODULES = [
    "scanner_agent.daemon",
    "scanner_agent.cli",
    "scanner_agent.codes",
    "scanner_agent.outbox",
    "scanner_agent.sync",
    "drivers.tcp",
    "drivers.replay",
    "drivers.serialport",
    "drivers.hidraw",
    "drivers.wedge",
    "drivers.discovery",
    "scanner_agent.cli.hw",
    "scanner_agent.bills",
    "scanner_agent.control",
    "scanner_agent.cli.bills",
    "scanner_agent.cli.agent",
    "scanner_agent.cli.queue",
]


NEVER_IN_A_DAEMON = ("uvicorn", "starlette", "textual", "cv2")
"""Top-level packages a daemon must not load: no configured part of it needs them."""


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_loads_no_server_no_tui_no_opencv(module: str) -> None:
    # rich may appear: httpx loads its optional CLI (which uses rich) whenever rich is installed.
    code = (
        f"import sys, {module}; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {NEVER_IN_A_DAEMON!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


SINK_MODULE = {
    "trace-api": "scanner_agent.sinks.trace_api",
    "alihealth": "scanner_agent.sinks.alihealth",
    "epcis": "scanner_agent.sinks.epcis",
}
"""The package of each protocol's sink: loaded by a daemon that syncs to it (so the test
looks at a daemon that really built its sink)."""

_RECORDER = """
import atexit, json, os, runpy, sys
def _record():
    with open(os.environ["LOADED_MODULES_OUT"], "w") as f:
        json.dump(sorted(sys.modules), f)
atexit.register(_record)
sys.argv = ["scanner-agent", "run", "--config", os.environ["LOADED_MODULES_CONFIG"]]
runpy.run_module("scanner_agent", run_name="__main__")
"""


def _secret(path: Path, value: str) -> str:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return str(path)


def _sync_tables(protocol: str, tmp_path: Path) -> str:
    """The ``[sync]`` table and the platform's own, each complete for ``protocol``."""
    token = _secret(tmp_path / "token", "hygiene-token")
    sync = f'[sync]\nprotocol = "{"trace-api" if protocol == "off" else protocol}"\nurl = "http://127.0.0.1:9"\ntoken_file = "{token}"\n'
    if protocol == "alihealth":
        secret = _secret(tmp_path / "app-secret", "hygiene-secret")
        return (
            sync + f'[alihealth]\nurl = "http://127.0.0.1:9/router/rest"\napp_key = "k"\n'
            f'app_secret_file = "{secret}"\nref_user_id = "ref"\nent_id = "ent"\n'
        )
    if protocol == "epcis":
        return (
            sync + f'[epcis]\nurl = "http://127.0.0.1:9"\ntoken_file = "{token}"\n'
            'read_point = "urn:epc:id:sgln:0614141.00777.0"\n'
            'biz_location = "urn:epc:id:sgln:0614141.00888.0"\n'
        )
    if protocol == "off":
        return sync.replace("[sync]\n", "[sync]\nenabled = false\n")
    return sync


@pytest.mark.parametrize("protocol", [*sorted(SINK_MODULE), "off"])
def test_a_running_daemon_loads_no_server_no_tui_no_opencv(protocol: str, tmp_path: Path) -> None:
    """A real ``scanner-agent run`` process with a TCP source, syncing to ``protocol`` (or,
    for ``off``, not syncing: no HTTP sink at all): the modules it has loaded by the time it
    stops (SIGTERM) are recorded at exit."""
    port = free_port()
    config = tmp_path / "agent.toml"
    config.write_text(
        f'device_id = "hygiene-dock"\n[outbox]\npath = "{tmp_path / "outbox.db"}"\n'
        f'min_free_mb = 0\n[control]\nsocket = "{tmp_path / "control.sock"}"\n'
        + _sync_tables(protocol, tmp_path)
        + f'[[source]]\ntype = "tcp"\nlisten = "127.0.0.1:{port}"\nack = true\n'
    )
    loaded_out = tmp_path / "loaded.json"
    env = {
        **os.environ,
        "LOADED_MODULES_OUT": str(loaded_out),
        "LOADED_MODULES_CONFIG": str(config),
    }
    log = tmp_path / "daemon.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", _RECORDER], stdout=subprocess.DEVNULL, stderr=err, env=env
        )
    try:
        wait_for(lambda: listening(port) or proc.poll() is not None, 30, "the daemon's TCP source")
        assert proc.poll() is None, log.read_text()
        proc.terminate()
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    loaded = set(json.loads(loaded_out.read_text()))
    if protocol != "off":
        assert SINK_MODULE[protocol] in loaded, "the daemon did not build its sink"
    assert "drivers.tcp" in loaded
    bad = sorted(m for m in loaded if m.split(".")[0] in NEVER_IN_A_DAEMON)
    assert bad == [], f"a daemon syncing to {protocol} loaded {bad}"
    # Nor the other platforms' clients and sinks (the config reads only their settings).
    others = sorted(
        m
        for other, package in SINK_MODULE.items()
        # With sync off the daemon still builds its protocol's sink (the intake asks its
        # admission), so "off" counts as the default protocol, trace-api, here.
        if other != ("trace-api" if protocol == "off" else protocol)
        for m in (f"{package}._client", f"{package}._sink")
        if m in loaded
    )
    assert others == [], f"a daemon syncing to {protocol} loaded {others}"
