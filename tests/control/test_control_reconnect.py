"""A client outlives its connection: an agent restart costs the next request nothing.

A request whose send failed never reached the agent, so it is sent again once on
a new connection.  A request that was sent and then lost its reply may have been
done: a command that changes something is not repeated, and the error says so.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.control import ControlClient, ControlUnavailable, ControlUncertain
from scanner_agent.traceserver import TraceServerThread

UNIT_A = "81234560000000011234"


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "control.sock"


async def test_a_client_survives_an_agent_restart(
    make_config: Callable[..., Any],
    start_agent: Callable[..., Any],
    trace_server: TraceServerThread,
    sock: Path,
) -> None:
    config = make_config(trace_server.url, control={"socket": str(sock)})
    agent = await start_agent(config)
    client = ControlClient(str(sock), timeout=10)
    try:
        assert (await asyncio.to_thread(client.call, "hello"))["device_id"] == "test-dock"
        await agent.stop()
        again = await start_agent(config)
        # The cached connection is dead: every kind of request goes through, once.
        opened = await asyncio.to_thread(client.call, "bill.open", number="SO-R1", type=201)
        assert opened["number"] == "SO-R1"
        await again.scan(UNIT_A)
        await again.stop()
        third = await start_agent(config)
        undone = await asyncio.to_thread(
            client.call, "bill.undo", number="SO-R1", reason="test", origin="test"
        )
        assert undone["code"] == UNIT_A
        await third.stop()
        await start_agent(config)
        await asyncio.to_thread(client.call, "bill.close", number="SO-R1")
        history = await asyncio.to_thread(client.call, "lookup", code=UNIT_A)
        assert [r["reason"] for r in history["removals"]] == ["test"]
        shown = await asyncio.to_thread(client.call, "bill.show", number="SO-R1")
        assert shown["bill"]["state"] != "open"
    finally:
        client.close()


class ScriptedAgent:
    """A UNIX socket server that reads each request and then does what its script says.

    ``script`` holds one entry per connection: ``"answer"`` replies ``ok`` to every
    request; ``"hang_up"`` reads one request and closes without a reply;
    ``"answer_once"`` answers one request and closes (then :attr:`closed` is set).
    """

    def __init__(self, path: Path, script: list[str]) -> None:
        self.path = path
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self.closed = threading.Event()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(8)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self.script:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            what = self.script.pop(0)
            with conn, conn.makefile("rb") as lines:
                for line in lines:
                    request = json.loads(line)
                    self.requests.append(request)
                    if what == "hang_up":
                        break
                    reply = {"id": request["id"], "ok": True, "result": {"cmd": request["cmd"]}}
                    conn.sendall(json.dumps(reply).encode() + b"\n")
                    if what == "answer_once":
                        break
            self.closed.set()

    def close(self) -> None:
        self._server.close()
        self._thread.join(5)


@pytest.fixture
def scripted(sock: Path) -> Iterator[Callable[[list[str]], ScriptedAgent]]:
    made: list[ScriptedAgent] = []

    def make(script: list[str]) -> ScriptedAgent:
        made.append(ScriptedAgent(sock, script))
        return made[-1]

    yield make
    for agent in made:
        agent.close()


def test_a_command_that_may_have_been_done_is_not_repeated_and_says_so(
    scripted: Callable[[list[str]], ScriptedAgent], sock: Path
) -> None:
    agent = scripted(["hang_up", "answer"])
    with ControlClient(str(sock), timeout=5) as client:
        with pytest.raises(ControlUncertain, match="may have") as raised:
            client.call("bill.undo", number="SO-1", reason="x")
        assert isinstance(raised.value, ControlUnavailable)  # callers that only know "down"
        assert raised.value.cmd == "bill.undo"
        assert [r["cmd"] for r in agent.requests] == ["bill.undo"]
        # The next request goes over a new connection.
        assert client.call("status") == {"cmd": "status"}
    assert [r["cmd"] for r in agent.requests] == ["bill.undo", "status"]


@pytest.mark.parametrize("cmd", ["status", "hello", "lookup", "bill.show", "bill.list"])
def test_a_question_whose_reply_was_lost_is_asked_again_once(
    scripted: Callable[[list[str]], ScriptedAgent], sock: Path, cmd: str
) -> None:
    agent = scripted(["hang_up", "answer"])
    with ControlClient(str(sock), timeout=5) as client:
        assert client.call(cmd) == {"cmd": cmd}  # it changes nothing: asking twice is safe
    assert [r["cmd"] for r in agent.requests] == [cmd, cmd]


def test_a_question_is_asked_again_only_once(
    scripted: Callable[[list[str]], ScriptedAgent], sock: Path
) -> None:
    agent = scripted(["hang_up", "hang_up", "answer"])
    with ControlClient(str(sock), timeout=5) as client, pytest.raises(ControlUnavailable):
        client.call("status")
    assert [r["cmd"] for r in agent.requests] == ["status", "status"]


@pytest.mark.parametrize("cmd", ["bill.open", "bill.undo", "bill.close", "status"])
def test_a_send_on_a_dropped_connection_is_sent_again_on_a_new_one(
    scripted: Callable[[list[str]], ScriptedAgent], sock: Path, cmd: str
) -> None:
    agent = scripted(["answer_once", "answer"])
    with ControlClient(str(sock), timeout=5) as client:
        assert client.call("hello") == {"cmd": "hello"}
        assert agent.closed.wait(5)  # the agent restarted: the cached connection is dead
        assert client.call(cmd) == {"cmd": cmd}
    assert [r["cmd"] for r in agent.requests] == ["hello", cmd]
