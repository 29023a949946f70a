"""Capture jobs and their per-event verdicts (pure functions, no HTTP)."""

from __future__ import annotations

from typing import Any

import pytest

from scanner_agent.kernel import ProtocolError
from scanner_agent.sinks.epcis import (
    CaptureJob,
    CaptureProblem,
    ServerProblemError,
    attributed_events,
    is_duplicate,
    parse_capture_job,
    settle_job,
)

A = "ni:///sha-256;" + "a" * 64 + "?ver=CBV2.0"
B = "ni:///sha-256;" + "b" * 64 + "?ver=CBV2.0"
C = "ni:///sha-256;" + "c" * 64 + "?ver=CBV2.0"
IDS = [A, B, C]


def job(success: bool, *errors: CaptureProblem, behaviour: str | None = "proceed") -> CaptureJob:
    return CaptureJob(
        "j1", running=False, success=success, error_behaviour=behaviour, errors=errors
    )


def dup(eid: str = "", **kw: Any) -> CaptureProblem:
    return CaptureProblem(title="Duplicate event", status=409, instance=eid, **kw)


def bad(eid: str = "", detail: str = "missing eventTime") -> CaptureProblem:
    return CaptureProblem(
        type="epcisException:ValidationException",
        title="Invalid",
        status=400,
        detail=detail,
        instance=eid,
    )


def verdicts(outcome: Any) -> dict[str, str]:
    return {k: v.status for k, v in outcome.results.items()}


def test_the_binding_example_job_parses() -> None:
    parsed = parse_capture_job(
        {
            "captureID": "id261378658356",
            "createdAt": "2021-07-21T17:32:28Z",
            "finishedAt": "2022-01-21T17:45:28Z",
            "running": False,
            "success": True,
            "captureErrorBehaviour": "rollback",
            "errors": [],
        }
    )
    assert parsed == CaptureJob(
        "id261378658356",
        running=False,
        success=True,
        created_at="2021-07-21T17:32:28Z",
        finished_at="2022-01-21T17:45:28Z",
        error_behaviour="rollback",
    )


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"running": "no", "success": True},
        {"running": False},
        {"running": False, "success": False, "errors": {}},
    ],
)
def test_malformed_jobs_are_protocol_errors(data: Any) -> None:
    with pytest.raises(ProtocolError):
        parse_capture_job(data)


def test_errors_are_attributed_by_instance_or_by_the_id_in_the_text() -> None:
    assert attributed_events(bad(B), IDS) == [B]
    text = CaptureProblem(detail=f"events {C} and {A} failed", title="x")
    assert attributed_events(text, IDS) == [A, C]
    upper = CaptureProblem(detail="ni:///sha-256;" + "B" * 64)
    assert attributed_events(upper, IDS) == [B]
    assert attributed_events(bad(), IDS) == []
    assert attributed_events(CaptureProblem(instance="urn:uuid:1"), ["urn:uuid:1", A]) == [
        "urn:uuid:1"
    ]


def test_duplicates_are_409_or_say_so() -> None:
    assert is_duplicate(CaptureProblem(title="Conflict", status=409))
    assert is_duplicate(CaptureProblem(title="Event already exists", status=400))
    assert is_duplicate(CaptureProblem(type="urn:x:DuplicateEventException"))
    assert not is_duplicate(bad())


def test_proceed_settles_named_errors_and_accepts_the_rest() -> None:
    out = settle_job(job(False, dup(A), bad(B)), IDS)
    assert verdicts(out) == {A: "duplicate", B: "rejected", C: "accepted"}
    assert out.results[B].reason == "Invalid: missing eventTime"
    assert out.resend == ()


def test_rollback_captures_the_unnamed_events_again() -> None:
    out = settle_job(job(False, dup(A), behaviour="rollback"), IDS)
    assert verdicts(out) == {A: "duplicate"}
    assert out.resend == ((B, C),)


def test_a_job_that_does_not_say_its_behaviour_is_taken_as_rollback() -> None:
    out = settle_job(job(False, bad(C), behaviour=None), IDS)
    assert verdicts(out) == {C: "rejected"}
    assert out.resend == ((A, B),)


def test_an_unattributable_validation_error_rejects_the_whole_document() -> None:
    out = settle_job(job(False, dup(A), bad(detail="bad @context")), IDS)
    assert verdicts(out) == {A: "duplicate", B: "rejected", C: "rejected"}
    assert out.results[C].reason == "Invalid: bad @context"


def test_an_unattributable_duplicate_splits_the_document() -> None:
    assert settle_job(job(False, dup()), IDS).resend == ((A,), (B,), (C,))
    alone = settle_job(job(False, dup()), [A])
    assert verdicts(alone) == {A: "duplicate"}


def test_a_successful_job_accepts_everything_not_named() -> None:
    assert verdicts(settle_job(job(True), IDS)) == dict.fromkeys(IDS, "accepted")
    assert verdicts(settle_job(job(True, dup(B)), IDS)) == {
        A: "accepted",
        B: "duplicate",
        C: "accepted",
    }


def test_server_side_problems_are_transient() -> None:
    problem = CaptureProblem(type="epcisException:ImplementationException", title="db down")
    with pytest.raises(ServerProblemError) as err:
        settle_job(job(False, problem), IDS)
    assert err.value.status_code == 500


def test_a_failed_job_without_errors_is_a_protocol_error_unless_it_has_an_error_file() -> None:
    with pytest.raises(ProtocolError):
        settle_job(job(False), IDS)
    with_file = CaptureJob("j", running=False, success=False, error_file="https://x/err.json")
    out = settle_job(with_file, IDS)
    assert set(verdicts(out).values()) == {"rejected"}
    assert "https://x/err.json" in (out.results[A].reason or "")


def test_a_running_job_cannot_be_settled() -> None:
    with pytest.raises(ValueError, match="still running"):
        settle_job(CaptureJob("j", running=True, success=True), IDS)
