"""A remote dock over SSH: the lines docs/control.md gives, run as written against a real sshd.

The agent's control socket is forwarded by a real ``ssh -N -L`` to a real
``sshd`` on loopback (throwaway host and user keys, tests/support/sshd.py), and
the docks overview attaches to the local end as a clerk would.  The ``ssh`` and
``scanner-agent tui`` lines are read from the page, so the documented lines are
the ones that work: only the port, the key and the known host are added, as a
clerk's ``~/.ssh/config`` would add them.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import signal
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable

from scanner_agent.cli.agent import tui_sockets
from scanner_agent.cli.app import build_parser
from scanner_agent.control import ControlClient
from scanner_agent.traceserver import TraceServerThread
from scanner_agent.tui import DocksApp, SocketAgent
from tests.support.polling import eventually
from tests.support.sshd import MISSING, SshServer, find_sshd

DOC = Path(__file__).resolve().parents[2] / "docs" / "control.md"
PRODUCT_BARCODE = "6901234567892"
UNIT = "81234560000000011234"


def documented_lines() -> tuple[list[str], list[str]]:
    """The ``ssh`` line and the ``scanner-agent tui`` line of "One clerk, several docks"."""
    section = DOC.read_text(encoding="utf-8").split("### One clerk, several docks", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "docs/control.md: no sh block under 'One clerk, several docks'"
    lines = block.group(1).replace("\\\n", " ").splitlines()
    ssh = next(shlex.split(ln) for ln in lines if ln.startswith("ssh "))
    tui = next(shlex.split(ln) for ln in lines if ln.startswith("scanner-agent tui"))
    return ssh, tui


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    found = find_sshd()
    if found is None:
        pytest.fail(MISSING, pytrace=False)
    root = tmp_path / "sshd"
    root.mkdir()
    server = SshServer(found, root)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def row(app: DocksApp, i: int) -> list[str]:
    table = app.query_one("#docks-table", DataTable)
    return [str(cell) for cell in table.get_row_at(i)]


async def test_a_dock_reached_over_the_documented_ssh_forward(
    sshd: SshServer,
    make_config: Callable[..., Any],
    start_agent: Callable[..., Any],
    trace_server: TraceServerThread,
    tmp_path: Path,
) -> None:
    here, remote = tmp_path / "here.sock", tmp_path / "remote" / "control.sock"
    remote.parent.mkdir()
    runtime = tmp_path / "run-user"
    runtime.mkdir(mode=0o700)
    local = runtime / "dock2.sock"
    for i, sock in enumerate((here, remote)):
        cfg = make_config(
            trace_server.url,
            device_id=f"dock-{i + 1}",
            outbox={"path": str(tmp_path / f"outbox{i}.db")},
            control={"socket": str(sock)},
        )
        agent = await start_agent(cfg)
    await agent.scan(PRODUCT_BARCODE)  # the remote dock refused a scan before anyone looked

    ssh, tui = documented_lines()
    assert ssh[:2] == ["ssh", "-N"], ssh
    assert ssh[-1] == "clerk@dock2.example", ssh
    # The page's line, with this machine's paths, then what a clerk's ~/.ssh/config would add.
    forward = [
        *[
            a.replace("$XDG_RUNTIME_DIR/dock2.sock", str(local)).replace(
                "/run/scanner-agent/control.sock", str(remote)
            )
            for a in ssh[:-1]
        ],
        *sshd.client_options(),
        f"{sshd.user}@127.0.0.1",
    ]
    assert f"{local}:{remote}" in forward, forward
    assert tui[:2] == ["scanner-agent", "tui"], tui
    args = build_parser().parse_args(
        [
            a.replace("$XDG_RUNTIME_DIR/dock2.sock", str(local)).replace(
                "/run/scanner-agent/control.sock", str(here)
            )
            for a in tui[1:]
        ]
    )
    sockets = tui_sockets(args)
    assert sockets == [str(here), str(local)]

    proc = await asyncio.to_thread(sshd.forward, forward, local)
    try:
        # The forwarded socket is the clerk's alone, as the page says (StreamLocalBindMask).
        assert stat.S_IMODE(local.stat().st_mode) == 0o600

        def remote_call(cmd: str, **kw: Any) -> Any:
            with ControlClient(str(local), timeout=10) as client:
                return client.call(cmd, **kw)

        # A command through the forward reaches the remote agent.
        opened = await asyncio.to_thread(remote_call, "bill.open", number="SO-SSH", type=201)
        assert opened["number"] == "SO-SSH"

        app = DocksApp([(s, SocketAgent(s)) for s in sockets], poll_s=0.1, reconnect_s=0.05)
        async with app.run_test(size=(80, 24)) as pilot:
            await eventually(
                lambda: (
                    [row(app, i)[0] for i in range(2)] == ["dock-1", "dock-2"]
                    and all("●" in row(app, i)[1] for i in range(2))
                ),
                within=15,
                what="both docks, one over ssh",
                pause=pilot.pause,
            )
            assert row(app, 1)[3].startswith("SO-SSH"), row(app, 1)
            assert row(app, 1)[4] == "product EAN", row(app, 1)
            # The SSH session drops: only that dock's row says so.
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait)
            await eventually(
                lambda: "no agent" in row(app, 1)[1],
                within=15,
                what="the dropped dock",
                pause=pilot.pause,
            )
            assert "●" in row(app, 0)[1]
            # A killed ssh leaves its socket file: the documented line binds over it
            # (StreamLocalBindUnlink) and the row comes back by itself.
            assert local.exists()
            proc = await asyncio.to_thread(sshd.forward, forward, local)
            await eventually(
                lambda: "●" in row(app, 1)[1], within=15, what="the dock back", pause=pilot.pause
            )
            await agent.scan(UNIT, UNIT)
            await eventually(
                lambda: row(app, 1)[4] == "duplicate",
                within=15,
                what="a new refusal over the forward",
                pause=pilot.pause,
            )
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)
