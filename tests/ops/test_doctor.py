"""``scanner-agent doctor`` on a good set-up (a real trace service) and on broken ones."""

from __future__ import annotations

import json
import os
import pwd
import re
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from scanner_agent.cli import ops as cli_ops
from scanner_agent.lab.alihealth_emulator import AliHealthEmulator
from scanner_agent.lab.epcis_emulator import EpcisEmulator
from scanner_agent.ops.doctor import Options, Report, Status, run_doctor
from scanner_agent.outbox import Outbox
from scanner_agent.traceserver import TraceServerThread

ME = pwd.getpwuid(os.getuid()).pw_name

WriteConfig = Callable[..., Path]


@pytest.fixture
def write_config(tmp_path: Path, token_file: Path) -> WriteConfig:
    """Write an agent.toml in tmp_path; keyword arguments replace parts of it."""

    def write(
        url: str = "http://127.0.0.1:9",
        *,
        token: str = f'token_file = "{token_file}"',
        outbox: str | None = None,
        extra: str = "",
        min_free_mb: int = 0,
    ) -> Path:
        path = tmp_path / "agent.toml"
        path.write_text(
            f"""
device_id = "doctor-dock"
[outbox]
path = "{outbox or tmp_path / "data" / "outbox.db"}"
min_free_mb = {min_free_mb}
[sync]
url = "{url}"
{token}
{extra}
"""
        )
        (tmp_path / "data").mkdir(exist_ok=True)
        return path

    return write


def doctor(config: Path, tmp_path: Path, **kwargs: Any) -> Report:
    (tmp_path / "sys").mkdir(exist_ok=True)
    options: dict[str, Any] = {
        "config_path": config,
        "service_user": ME,
        "sysfs": tmp_path / "sys",
        "comports": list,
        "profile_dirs": (tmp_path / "no-site-profiles",),
    }
    options.update(kwargs)
    return run_doctor(Options(**options))


def statuses(report: Report) -> dict[str, Status]:
    return {c.name: c.status for c in report.checks}


def test_a_good_set_up_passes_every_check(
    tmp_path: Path, write_config: WriteConfig, trace_server: TraceServerThread
) -> None:
    Outbox.open(tmp_path / "data" / "outbox.db").close()
    device = tmp_path / "ttyACM0"
    device.touch(mode=0o660)
    config = write_config(
        trace_server.url,
        extra=f'[[source]]\ntype = "serial"\nport = "{device}"\nprofile = "newland-hr22"\n',
    )
    report = doctor(config, tmp_path)
    assert report.ok, report.to_dict()
    got = statuses(report)
    for name in (
        "config",
        "service user",
        "outbox",
        "disk space",
        "trace service",
        "token",
        "clock",
    ):
        assert got[name] is Status.OK, (name, report.by_name(name))
    assert got[f"device {device}"] is Status.OK
    assert "integrity ok" in report.by_name("outbox").detail
    # No Newland scanner attached in the empty sysfs: a warning, not a failure.
    assert got["profile newland-hr22"] is Status.WARN


def test_a_refused_token_fails_with_a_hint_and_exit_status_1(
    tmp_path: Path,
    write_config: WriteConfig,
    trace_server: TraceServerThread,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad-token"
    bad.write_text("not-the-token\n")
    bad.chmod(0o600)
    config = write_config(trace_server.url, token=f'token_file = "{bad}"')
    report = doctor(config, tmp_path)
    token = report.by_name("token")
    assert token.status is Status.FAIL
    assert "401" in token.detail
    assert token.hint
    assert report.by_name("trace service").status is Status.OK
    assert not report.ok
    assert cli_ops.main(["doctor", "-c", str(config), "--user", ME, "--json"]) == 3
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    assert {"name": "token", "status": "fail"}.items() <= next(
        c for c in data["checks"] if c["name"] == "token"
    ).items()
    assert "not-the-token" not in json.dumps(data)


def test_no_token_configured_fails(
    tmp_path: Path, write_config: WriteConfig, trace_server: TraceServerThread
) -> None:
    report = doctor(write_config(trace_server.url, token=""), tmp_path)
    assert report.by_name("token").status is Status.FAIL
    assert "no token" in report.by_name("token").detail


def test_an_unreachable_service_fails_and_skips_token_and_clock(
    tmp_path: Path, write_config: WriteConfig
) -> None:
    report = doctor(write_config("http://127.0.0.1:9"), tmp_path)
    got = statuses(report)
    assert got["trace service"] is Status.FAIL
    assert got["token"] is Status.SKIP
    assert got["clock"] is Status.SKIP
    assert "sync.url" in report.by_name("trace service").hint


def _service(date: datetime) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"events": [], "next": None}, headers={"Date": format_datetime(date, True)}
        )

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("skew_s", "status"),
    [(30, Status.OK), (-45, Status.OK), (600, Status.FAIL), (-180, Status.FAIL)],
)
def test_clock_skew_over_two_minutes_fails(
    tmp_path: Path, write_config: WriteConfig, skew_s: int, status: Status
) -> None:
    now = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    report = doctor(
        write_config("https://trace.example"),
        tmp_path,
        transport=_service(now - timedelta(seconds=skew_s)),
        now=lambda: now,
    )
    clock = report.by_name("clock")
    assert clock.status is status, clock
    assert f"{skew_s:+d} s" in clock.detail
    if status is Status.FAIL:
        assert "timedatectl" in clock.hint


def test_a_corrupt_outbox_fails(tmp_path: Path, write_config: WriteConfig) -> None:
    outbox = tmp_path / "data" / "outbox.db"
    config = write_config(outbox=str(outbox), extra="enabled = false")
    outbox.write_bytes(b"this is not a database" * 200)
    report = doctor(config, tmp_path)
    check = report.by_name("outbox")
    assert check.status is Status.FAIL
    assert check.hint
    assert report.by_name("trace service").status is Status.SKIP


def test_a_damaged_page_fails_the_quick_check(tmp_path: Path, write_config: WriteConfig) -> None:
    outbox = tmp_path / "data" / "outbox.db"
    Outbox.open(outbox).close()
    db = sqlite3.connect(outbox)
    db.execute("PRAGMA journal_mode = DELETE")
    page = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    data = bytearray(outbox.read_bytes())
    data[page + 8 : page * 2] = b"\xff" * (page - 8)  # garble the second page (not the header)
    outbox.write_bytes(bytes(data))
    report = doctor(write_config(outbox=str(outbox), extra="enabled = false"), tmp_path)
    assert report.by_name("outbox").status is Status.FAIL


def test_a_missing_outbox_directory_fails(tmp_path: Path, write_config: WriteConfig) -> None:
    config = write_config(outbox=str(tmp_path / "nowhere" / "outbox.db"), extra="enabled = false")
    report = doctor(config, tmp_path)
    assert report.by_name("outbox").status is Status.FAIL
    assert "install -d" in report.by_name("outbox").hint


def test_free_space_below_the_reserve_fails(tmp_path: Path, write_config: WriteConfig) -> None:
    report = doctor(write_config(min_free_mb=1 << 40, extra="enabled = false"), tmp_path)
    assert report.by_name("disk space").status is Status.FAIL


def test_missing_and_forbidden_devices_fail(tmp_path: Path, write_config: WriteConfig) -> None:
    forbidden = tmp_path / "hidraw3"
    forbidden.touch(mode=0o600)
    missing = tmp_path / "ttyACM9"
    config = write_config(
        extra=(
            "enabled = false\n"
            f'[[source]]\ntype = "serial"\nport = "{missing}"\n'
            f'[[source]]\ntype = "hidpos"\ndevice = "{forbidden}"\n'
            '[[source]]\ntype = "serial"\nport = "loop://"\n'
        )
    )
    # "nobody" is neither the owner (root) nor in its group: no access.
    report = doctor(config, tmp_path, service_user="nobody")
    assert report.by_name(f"device {missing}").status is Status.FAIL
    denied = report.by_name(f"device {forbidden}")
    assert denied.status is Status.FAIL
    assert "nobody cannot read and write" in denied.detail
    assert "udev" in denied.hint
    assert not [c for c in report.checks if "loop://" in c.name]


def test_an_unknown_service_user_is_a_warning(tmp_path: Path, write_config: WriteConfig) -> None:
    report = doctor(write_config(extra="enabled = false"), tmp_path, service_user="no-such-user-x")
    assert report.by_name("service user").status is Status.WARN


def test_a_bad_config_is_the_only_check(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("[sync]\nbatch_size = 0\n")
    report = doctor(config, tmp_path)
    assert [c.name for c in report.checks] == ["config"]
    assert "sync.batch_size" in report.checks[0].detail


def test_doctor_prints_one_line_per_check(
    tmp_path: Path, write_config: WriteConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(extra="enabled = false")
    code = cli_ops.main(["doctor", "-c", str(config), "--user", ME, "--sysfs", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0].startswith("[ OK ] config")
    assert any(line.startswith("[SKIP] trace service") for line in lines)


# -- the credential and service of sync.protocol ------------------------------------------

ALI_SECRET = "doctor-app-secret"
EPCIS_TOKEN = "doctor-epcis-token"


def _alihealth_config(write_config: WriteConfig, url: str, secret_file: Path) -> Path:
    return write_config(
        extra=f"""protocol = "alihealth"
[alihealth]
url = "{url}"
app_key = "app1"
app_secret_file = "{secret_file}"
ref_user_id = "ref-ent-1"
""",
    )


@pytest.fixture
def ali_secret(tmp_path: Path) -> Path:
    path = tmp_path / "alihealth.secret"
    path.write_text(ALI_SECRET + "\n")
    path.chmod(0o640)
    return path


@pytest.fixture
def gateway() -> Iterator[AliHealthEmulator]:
    with AliHealthEmulator({"app1": ALI_SECRET}) as gw:
        yield gw


def test_alihealth_checks_the_secret_file_and_a_signed_call_to_the_gateway(
    tmp_path: Path, write_config: WriteConfig, gateway: AliHealthEmulator, ali_secret: Path
) -> None:
    report = doctor(_alihealth_config(write_config, gateway.url, ali_secret), tmp_path)
    got = statuses(report)
    assert got["app secret"] is Status.OK, report.by_name("app secret")
    assert got["码上放心 gateway"] is Status.OK, report.by_name("码上放心 gateway")
    assert got["clock"] is Status.OK
    assert "trace service" not in got  # sync.url is not what this agent syncs to
    with gateway.state.lock:
        (call,) = gateway.state.calls
    # The bill status query the sink polls: for api = "kyt" (the default) the enterprise one.
    assert call["method"] == "alibaba.alihealth.drug.kyt.scqy.searchstatus"
    assert call["ref_ent_id"] == "ref-ent-1"
    assert report.ok


def test_alihealth_a_refused_secret_fails_without_showing_it(
    tmp_path: Path,
    write_config: WriteConfig,
    gateway: AliHealthEmulator,
    ali_secret: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ali_secret.write_text("not-the-secret\n")
    config = _alihealth_config(write_config, gateway.url, ali_secret)
    report = doctor(config, tmp_path)
    check = report.by_name("app secret")
    assert check.status is Status.FAIL
    assert "Invalid signature" in check.detail
    assert str(ali_secret) in check.detail
    assert "sign_method" in check.hint
    assert report.by_name("码上放心 gateway").status is Status.OK
    assert cli_ops.main(["doctor", "-c", str(config), "--user", ME, "--json"]) == 3
    assert "not-the-secret" not in capsys.readouterr().out


def test_alihealth_a_secret_readable_by_everyone_fails_before_any_call(
    tmp_path: Path, write_config: WriteConfig, gateway: AliHealthEmulator, ali_secret: Path
) -> None:
    ali_secret.chmod(0o644)
    report = doctor(_alihealth_config(write_config, gateway.url, ali_secret), tmp_path)
    check = report.by_name("app secret")
    assert check.status is Status.FAIL
    assert "readable by every user" in check.detail
    assert "0640" in check.hint
    assert report.by_name("码上放心 gateway").status is Status.SKIP
    with gateway.state.lock:
        assert gateway.state.calls == []


def test_alihealth_an_unreachable_gateway_fails(
    tmp_path: Path, write_config: WriteConfig, ali_secret: Path
) -> None:
    url = "http://127.0.0.1:9/router/rest"
    report = doctor(_alihealth_config(write_config, url, ali_secret), tmp_path)
    assert report.by_name("码上放心 gateway").status is Status.FAIL
    assert "alihealth.url" in report.by_name("码上放心 gateway").hint
    assert report.by_name("app secret").status is Status.OK  # the file itself is fine
    assert report.by_name("clock").status is Status.SKIP


def _epcis_config(write_config: WriteConfig, url: str, token_file: Path) -> Path:
    return write_config(
        extra=f"""protocol = "epcis"
[epcis]
url = "{url}"
token_file = "{token_file}"
read_point = "urn:epc:id:sgln:0614141.00777.0"
biz_location = "urn:epc:id:sgln:0614141.00888.0"
""",
    )


@pytest.fixture
def epcis_token(tmp_path: Path) -> Path:
    path = tmp_path / "epcis.token"
    path.write_text(EPCIS_TOKEN + "\n")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("repo_token", "token_status"),
    [(EPCIS_TOKEN, Status.OK), ("another-token", Status.FAIL)],
    ids=["accepted", "refused"],
)
def test_epcis_checks_the_token_against_the_repository(
    tmp_path: Path,
    write_config: WriteConfig,
    epcis_token: Path,
    repo_token: str,
    token_status: Status,
) -> None:
    with EpcisEmulator(token=repo_token) as repo:
        report = doctor(_epcis_config(write_config, repo.url, epcis_token), tmp_path)
    token = report.by_name("token")
    assert token.status is token_status, token
    assert report.by_name("EPCIS repository").status is Status.OK
    assert report.by_name("clock").status is Status.OK
    if token_status is Status.FAIL:
        assert "refused the token" in token.detail
        assert str(epcis_token) in token.detail
        assert EPCIS_TOKEN not in json.dumps(report.to_dict())


def test_epcis_an_unreachable_repository_or_an_open_token_file_fails(
    tmp_path: Path, write_config: WriteConfig, epcis_token: Path
) -> None:
    report = doctor(_epcis_config(write_config, "http://127.0.0.1:9", epcis_token), tmp_path)
    assert report.by_name("EPCIS repository").status is Status.FAIL
    assert "epcis.url" in report.by_name("EPCIS repository").hint
    epcis_token.chmod(0o604)
    report = doctor(_epcis_config(write_config, "http://127.0.0.1:9", epcis_token), tmp_path)
    assert report.by_name("token").status is Status.FAIL
    assert report.by_name("EPCIS repository").status is Status.SKIP


def test_alihealth_a_site_problem_fails_with_what_to_fix(
    write_config: WriteConfig, tmp_path: Path, gateway: AliHealthEmulator, ali_secret: Path
) -> None:
    # The gateway refuses this site's address (TOP 11, IP whitelist): not the secret's fault.
    gateway.state.ip_whitelist = {"192.0.2.7"}
    report = doctor(_alihealth_config(write_config, gateway.url, ali_secret), tmp_path)
    check = report.by_name("码上放心 gateway")
    assert check.status is Status.FAIL, check
    assert "IP whitelist" in check.detail
    assert report.by_name("app secret").status is Status.OK


def test_alihealth_a_refused_timestamp_names_the_clock_with_its_offset(
    write_config: WriteConfig, tmp_path: Path, gateway: AliHealthEmulator, ali_secret: Path
) -> None:
    gateway.state.clock_offset_s = -20 * 60  # the gateway's clock 20 minutes behind
    report = doctor(_alihealth_config(write_config, gateway.url, ali_secret), tmp_path)
    check = report.by_name("码上放心 gateway")
    assert check.status is Status.FAIL, check
    assert re.search(r"the box.s clock is (19 min 59|20 min [0-2]) s ahead of", check.detail)
    assert report.by_name("clock").status is Status.FAIL
