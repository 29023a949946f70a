"""Structured logs for journald, and tokens that never reach a log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from scanner_agent.config import AgentConfig
from scanner_agent.ops import logs
from tests.support.agent import TOKEN

log = logging.getLogger("scanner_agent.test_ops")


async def test_the_token_never_appears_in_a_log_line_even_when_logged_by_mistake(
    caplog: pytest.LogCaptureFixture,
    make_config: Callable[..., AgentConfig],
    start_agent: Any,
) -> None:
    # The daemon registers the token it reads; nothing else tells the logs about it.
    agent = await start_agent(make_config(sync={"enabled": False}))
    caplog.set_level(logging.DEBUG)
    log.error("token is %s", TOKEN)
    log.warning(f"sending headers {{'Authorization': 'Bearer {TOKEN}'}}")
    log.info("device %s", "dock", extra={"device": "dock", "bill": f"bill-{TOKEN}"})
    try:
        raise RuntimeError(f"proxy echoed Authorization: Bearer {TOKEN}")
    except RuntimeError:
        log.exception("send failed")
    await agent.stop()
    assert caplog.records
    assert TOKEN not in caplog.text
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in (record.exc_text or "")
        assert TOKEN not in logging.Formatter().format(record)
        assert TOKEN not in logs.JsonFormatter().format(record)
    assert "token is <redacted>" in caplog.text
    assert "Bearer <redacted>" in caplog.text


def test_any_bearer_value_is_redacted_even_an_unknown_one(caplog: pytest.LogCaptureFixture) -> None:
    logs.install_redaction()
    caplog.set_level(logging.INFO)
    log.info("request had Authorization: Bearer eyJhbGciOi.payload.sig")
    assert "eyJhbGciOi" not in caplog.text
    assert "Authorization: Bearer <redacted>" in caplog.text


def test_json_lines_carry_device_bill_and_event_ids() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.RedactingFilter())
    logger = logging.getLogger("scanner_agent.test_json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            "scan refused: %s",
            "duplicate scan",
            extra={"device": "dock-1", "bill": "PO-42", "event_id": "0190-abc", "source": "tcp:x"},
        )
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    line = json.loads(stream.getvalue())
    assert line["msg"] == "scan refused: duplicate scan"
    assert line["level"] == "warning"
    assert line["logger"] == "scanner_agent.test_json"
    assert (line["device"], line["bill"], line["event_id"], line["source"]) == (
        "dock-1",
        "PO-42",
        "0190-abc",
        "tcp:x",
    )


def test_setup_logging_writes_json_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logs.setup_logging("info")
        logging.getLogger("scanner_agent.x").info("hello", extra={"device": "d1"})
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert json.loads(err)["device"] == "d1"
        logs.setup_logging("info", json_lines=False)
        logging.getLogger("scanner_agent.x").info("hello again")
        assert "INFO    scanner_agent.x: hello again" in capsys.readouterr().err
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])


def test_short_values_are_not_treated_as_secrets() -> None:
    r = logs.Redactor()
    r.add_secret("abc")
    r.add_secret("")
    assert r.redact("abc def") == "abc def"
