"""``check-config`` refuses exactly what ``run`` refuses, in the same words (issue 15 §4).

Every case is a real config on real files, put through both commands as real
subprocesses at once.  Both must exit 2 with the same error (and hint) lines,
naming the expected key; ``run`` must refuse before it touches anything: no
outbox created or changed, no "stopped" logged, no traceback.

Permissions are about the user the agent runs as.  As root (the test machine
runs the suite as root, where every access check passes) both commands run as
``nobody`` through ``setpriv``; otherwise as the current user.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.outbox import Outbox
from tests.support.polling import wait_for
from tests.support.users import NOBODY, as_user

AGENT = [sys.executable, "-m", "scanner_agent"]
RUN_DEADLINE_S = 60.0
"""A refused config ends ``run`` at once; one still running after this was accepted."""
TOKEN = "tok-3f9a1c77e2"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)  # a JSON string is a TOML basic string


def to_toml(data: dict[str, Any]) -> str:
    """``data`` as TOML: plain keys, ``[section]`` tables, and lists of tables as ``[[name]]``."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict | list)]
    for section, table in data.items():
        if isinstance(table, dict):
            lines.append(f"[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    for name, tables in data.items():
        if isinstance(tables, list):
            for table in tables:
                lines.append(f"[[{name}]]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


@dataclass
class Site:
    """A directory the agent's user owns, holding a config that ``run`` accepts."""

    root: Path
    data: dict[str, Any] = field(default_factory=dict)
    config_mode: int = 0o644

    def __post_init__(self) -> None:
        (self.root / "data").mkdir(mode=0o750)
        (self.root / "run").mkdir(mode=0o750)
        self.write("token", TOKEN + "\n")
        self.data = {
            "device_id": "check-dock",
            "outbox": {"path": str(self.root / "data" / "outbox.db"), "min_free_mb": 0},
            "sync": {"url": "http://127.0.0.1:9", "token_file": str(self.root / "token")},
            "control": {"socket": str(self.root / "run" / "control.sock")},
        }

    def write(self, name: str, text: str | bytes, mode: int = 0o600) -> Path:
        path = self.root / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        path.chmod(mode)
        return path

    def set(self, section: str, **values: Any) -> None:
        self.data.setdefault(section, {}).update(values)

    def give_away(self) -> None:
        """Hand every file to the user the commands run as (when that is not us)."""
        if os.geteuid() == 0:
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, NOBODY, NOBODY, follow_symlinks=False)

    @property
    def config(self) -> Path:
        return self.root / "agent.toml"

    def save(self) -> Path:
        self.config.write_text(to_toml(self.data))
        self.config.chmod(self.config_mode)
        return self.config


@pytest.fixture
def site() -> Iterator[Site]:
    # Not under tmp_path: pytest's directories are closed to every other user.
    root = Path(tempfile.mkdtemp(prefix="check-config-"))
    root.chmod(0o755)
    try:
        yield Site(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _lines(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if line.startswith(("scanner-agent: error:", "scanner-agent: hint:"))
    ]


@dataclass
class Outcome:
    check: subprocess.CompletedProcess[str]
    run_rc: int
    run_stderr: str


def check_config(
    config: Path, *args: str, as_agent_user: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``check-config`` on ``config``, as the agent's user unless told otherwise."""
    return subprocess.run(
        [
            *(as_user() if as_agent_user else []),
            *AGENT,
            "check-config",
            "--config",
            str(config),
            *list(args),
        ],
        capture_output=True,
        text=True,
        timeout=RUN_DEADLINE_S,
        cwd=config.parent,
        env=env,
        check=False,
    )


def both(config: Path, env: dict[str, str] | None = None) -> Outcome:
    """``check-config`` and ``run`` on ``config``, at the same time, as the agent's user."""
    prefix = as_user()
    cwd = config.parent
    runner = subprocess.Popen(
        [*prefix, *AGENT, "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env,
    )
    try:
        check = check_config(config, env=env)
        try:
            _, run_stderr = runner.communicate(timeout=RUN_DEADLINE_S)
        except subprocess.TimeoutExpired:
            runner.kill()
            _, run_stderr = runner.communicate()
            pytest.fail(f"run accepted the config (still running); check-config: {check}")
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    return Outcome(check, runner.returncode, run_stderr)


Setup = Callable[[Site], None]


def _token(text: str | bytes, mode: int = 0o600) -> Setup:
    def setup(s: Site) -> None:
        s.write("token", text, mode)

    return setup


def _outbox_dir_mode(mode: int) -> Setup:
    return lambda s: (s.root / "data").chmod(mode)


def _outbox_under_closed_dir(s: Site) -> None:
    (s.root / "closed").mkdir(mode=0o500)
    s.set("outbox", path=str(s.root / "closed" / "sub" / "outbox.db"))


def _outbox_is_directory(s: Site) -> None:
    s.set("outbox", path=str(s.root / "data"))


def _outbox_symlink(s: Site) -> None:
    (s.root / "data" / "elsewhere.db").write_bytes(b"")
    (s.root / "data" / "outbox.db").symlink_to(s.root / "data" / "elsewhere.db")


def _foreign_sqlite(s: Site) -> None:
    db = sqlite3.connect(s.root / "data" / "outbox.db")
    db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO customers (name) VALUES ('Apotheke')")
    db.commit()
    db.close()


def _foreign_app_id(s: Site) -> None:
    db = sqlite3.connect(s.root / "data" / "outbox.db")
    db.execute("PRAGMA application_id = 1196444487")  # 0x47504B47, GeoPackage's "GPKG"
    db.commit()
    db.close()


def _outbox_read_only(s: Site) -> None:
    Outbox.open(s.root / "data" / "outbox.db").close()
    (s.root / "data" / "outbox.db").chmod(0o400)


def _outbox_from_a_newer_agent(s: Site) -> None:
    """An outbox a newer scanner-agent migrated (the box was downgraded since)."""
    path = s.root / "data" / "outbox.db"
    Outbox.open(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO _migrations VALUES (999, 'a later version', '2030-01-01')")
    db.execute("PRAGMA user_version = 999")
    db.commit()
    db.close()


def _control(**values: Any) -> Setup:
    return lambda s: s.set("control", **values)


def _control_dir_closed(s: Site) -> None:
    (s.root / "run").chmod(0o500)


def _control_socket_is_a_file(s: Site) -> None:
    s.write("run/control.sock", "not a socket")


def _sync(**values: Any) -> Setup:
    return lambda s: s.set("sync", **values)


def _epcis(url: str, *, token_mode: int = 0o600) -> Setup:
    def setup(s: Site) -> None:
        s.write("epcis-token", TOKEN, token_mode)
        s.set("sync", protocol="epcis")
        s.set(
            "epcis",
            url=url,
            token_file=str(s.root / "epcis-token"),
            read_point="urn:epc:id:sgln:0614141.00777.0",
            biz_location="urn:epc:id:sgln:0614141.00888.0",
        )

    return setup


def _alihealth_secret(text: str) -> Setup:
    def setup(s: Site) -> None:
        s.write("app-secret", text)
        s.set("sync", protocol="alihealth")
        s.set(
            "alihealth",
            app_key="12345678",
            app_secret_file=str(s.root / "app-secret"),
            ref_user_id="ref-1",
        )

    return setup


def _client_key_world_readable(s: Site) -> None:
    s.write("client.pem", "-----BEGIN CERTIFICATE-----\n")
    s.write("client.key", "-----BEGIN PRIVATE KEY-----\n", 0o644)
    s.set("sync", client_cert=str(s.root / "client.pem"), client_key=str(s.root / "client.key"))


def _tls_file(key: str, text: str | None) -> Setup:
    """``sync.<key>`` names a file holding ``text`` (None: no file there), over https."""

    def setup(s: Site) -> None:
        path = s.root / f"{key}.pem"
        if text is not None:
            s.write(path.name, text, 0o640)
        s.set("sync", url="https://127.0.0.1:9", **{key: str(path)})
        if key == "client_cert":
            s.write("client.key", "-----BEGIN PRIVATE KEY-----\n", 0o600)
            s.set("sync", client_key=str(s.root / "client.key"))

    return setup


def _metrics(listen: str) -> Setup:
    return lambda s: s.set("metrics", listen=listen)


def _unknown_key(s: Site) -> None:
    s.set("sync", tokn_file=str(s.root / "token"))


def _token_env_unset(s: Site) -> None:
    s.data["sync"].pop("token_file")
    s.set("sync", token_env="CHECK_CONFIG_TEST_UNSET_TOKEN")


def _token_unreadable(s: Site) -> None:
    (s.root / "token").chmod(0o200)


def _token_is_directory(s: Site) -> None:
    (s.root / "token").unlink()
    (s.root / "token").mkdir(mode=0o700)


def _token_is_fifo(s: Site) -> None:
    """A named pipe: opening it to read would wait for a writer for ever."""
    (s.root / "token").unlink()
    os.mkfifo(s.root / "token", 0o600)


def _sources(*tables: dict[str, Any]) -> Setup:
    return lambda s: s.data.__setitem__("source", [dict(t) for t in tables])


def _replay_missing(s: Site) -> None:
    s.data["source"] = [{"type": "replay", "path": str(s.root / "import.txt")}]


def _replay_unreadable(s: Site) -> None:
    s.write("import.txt", "81234560000000011234\n", 0o200)
    s.data["source"] = [{"type": "replay", "path": str(s.root / "import.txt")}]


def _camera_file_missing(s: Site) -> None:
    s.data["source"] = [{"type": "camera", "device": str(s.root / "dock-door.mp4")}]


def _camera_folder_closed(s: Site) -> None:
    (s.root / "frames").mkdir(mode=0o300)
    s.data["source"] = [{"type": "camera", "device": str(s.root / "frames") + "/"}]


def _control_socket_too_long(s: Site) -> None:
    """A path longer than a UNIX socket address holds (108 bytes with its NUL on Linux)."""
    deep = s.root / "run" / ("d" * 100)
    deep.mkdir(mode=0o750)
    s.set("control", socket=str(deep / "control.sock"))


REFUSALS: dict[str, tuple[Setup, str, str]] = {
    # name: (setup, key, words of the message)
    "token file missing": (
        lambda s: (s.root / "token").unlink(),
        "sync.token_file",
        "No such file or directory",
    ),
    "token file readable by everyone": (
        _token(TOKEN, 0o644),
        "sync.token_file",
        "readable by every user",
    ),
    "token file the user cannot read": (_token_unreadable, "sync.token_file", "cannot read"),
    "token file writable by everyone": (
        _token(TOKEN, 0o602),
        "sync.token_file",
        "writable by every user",
    ),
    "config file writable by everyone": (
        lambda s: setattr(s, "config_mode", 0o666),
        "config file",
        "writable by every user",
    ),
    "token file is a directory": (_token_is_directory, "sync.token_file", "not a regular file"),
    "token file is a named pipe": (_token_is_fifo, "sync.token_file", "not a regular file"),
    "token of two lines": (_token("PART1-a1b2c3\nPART2-d4e5f6\n"), "sync.token_file", "2 lines"),
    "token not ASCII": (_token("tok\u00a0en-1234\n"), "sync.token_file", "not printable ASCII"),
    "token with a control byte": (_token(b"tok\x1ben-1234"), "sync.token_file", "printable"),
    "token file empty": (_token(""), "sync.token_file", "is empty"),
    "token with a NUL byte": (_token(b"tok\x00en-1234\n"), "sync.token_file", "printable"),
    "token with a trailing tab": (_token(b"token-1234\t\n"), "sync.token_file", "printable"),
    "token file huge": (_token(b"A" * 100_000), "sync.token_file", "larger than"),
    "token variable unset": (_token_env_unset, "sync.token_env", "is not set"),
    "outbox directory not enterable": (_outbox_dir_mode(0o600), "outbox.path", "cannot enter"),
    "outbox directory not writable": (
        _outbox_dir_mode(0o500),
        "outbox.path",
        "cannot create files in",
    ),
    "outbox directory cannot be created": (
        _outbox_under_closed_dir,
        "outbox.path",
        "cannot create a directory in",
    ),
    "outbox path is a directory": (_outbox_is_directory, "outbox.path", "is a directory"),
    "outbox path is a symlink": (_outbox_symlink, "outbox.path", "symbolic link"),
    "outbox path is another program's database": (
        _foreign_sqlite,
        "outbox.path",
        "not an outbox (tables customers)",
    ),
    "outbox path has another application id": (
        _foreign_app_id,
        "outbox.path",
        "another program's SQLite database",
    ),
    "outbox file read-only": (_outbox_read_only, "outbox.path", "cannot read and write"),
    "outbox written by a newer agent": (
        _outbox_from_a_newer_agent,
        "outbox.path",
        "written by a newer scanner-agent",
    ),
    "control mode 777": (_control(mode="777"), "control.mode", "every user"),
    "control mode 0666": (_control(mode="0666"), "control.mode", "every user"),
    "control mode 0662": (_control(mode="0662"), "control.mode", "every user"),
    "control directory not writable": (
        _control_dir_closed,
        "control.socket",
        "cannot create files in",
    ),
    "control group unknown": (_control(group="no-such-group-x7"), "control.group", "no group"),
    "control socket path is a file": (
        _control_socket_is_a_file,
        "control.socket",
        "is not a socket",
    ),
    "control socket path too long for a socket": (
        _control_socket_too_long,
        "control.socket",
        "too long",
    ),
    "tcp source on a host that does not resolve": (
        _sources({"type": "tcp", "listen": "scanner-dock.invalid:9100"}),
        "source[0].listen",
        "cannot listen on 'scanner-dock.invalid'",
    ),
    "tcp source on an address of another box": (
        _sources({"type": "tcp", "listen": "192.0.2.10:9100"}),
        "source[0].listen",
        "cannot listen on '192.0.2.10'",
    ),
    "two tcp sources on one port": (
        _sources(
            {"type": "tcp", "listen": "127.0.0.1:39100"},
            {"type": "tcp", "listen": "127.0.0.1:39100"},
        ),
        "source[1].listen",
        "source[0] listens there already",
    ),
    "a tcp source on every address and one on loopback, same port": (
        _sources(
            {"type": "tcp", "listen": "0.0.0.0:39100"},
            {"type": "tcp", "listen": "127.0.0.1:39100"},
        ),
        "source[1].listen",
        "source[0] listens there already",
    ),
    "camera video file missing": (_camera_file_missing, "source[0].device", "no such file"),
    "camera image folder the user cannot read": (
        _camera_folder_closed,
        "source[0].device",
        "cannot read",
    ),
    "replay file missing": (_replay_missing, "source[0].path", "No such file or directory"),
    "replay file the user cannot read": (_replay_unreadable, "source[0].path", "cannot read"),
    "a service url that is no url": (_sync(url="http://[::1"), "sync.url", "not a url"),
    "plain http to a remote trace service": (
        _sync(url="http://192.0.2.10:8900"),
        "sync.url",
        "plain http://",
    ),
    "plain http to a remote EPCIS repository": (
        _epcis("http://epcis.example.com/"),
        "epcis.url",
        "plain http://",
    ),
    "EPCIS token readable by everyone": (
        _epcis("https://epcis.example.com/", token_mode=0o644),
        "epcis.token_file",
        "readable by every user",
    ),
    "app secret of two lines": (
        _alihealth_secret("SECRET-1\nSECRET-2\n"),
        "alihealth.app_secret_file",
        "2 lines",
    ),
    "client key readable by everyone": (
        _client_key_world_readable,
        "sync.client_key",
        "readable by every user",
    ),
    "CA bundle missing": (_tls_file("ca_bundle", None), "sync.ca_bundle", "No such file"),
    "CA bundle that is no certificate": (
        _tls_file("ca_bundle", "not a certificate\n"),
        "sync.ca_bundle",
        "cannot load",
    ),
    "client certificate that is no certificate": (
        _tls_file("client_cert", "not a certificate\n"),
        "sync.client_cert",
        "cannot load",
    ),
    "metrics on every interface": (_metrics("0.0.0.0:9464"), "metrics.listen", "loopback"),
    "metrics on a name that only looks loopback": (
        _metrics("127.0.0.1.invalid:9464"),
        "metrics.listen",
        "cannot resolve",
    ),
    "unknown key": (_unknown_key, "sync.tokn_file", "did you mean 'token_file'?"),
}


def _snapshot(site: Site) -> dict[str, str]:
    """What is in the outbox directory, by name and content hash."""
    out = {}
    data = site.root / "data"
    if os.geteuid() == 0 or os.access(data, os.R_OK | os.X_OK):
        for p in sorted(data.iterdir()):
            if p.is_symlink():
                out[p.name] = f"-> {os.readlink(p)}"
            elif p.is_file():
                out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[p.name] = "dir"
    return out


@pytest.mark.parametrize("name", list(REFUSALS))
def test_check_config_and_run_refuse_alike(site: Site, name: str) -> None:
    setup, key, words = REFUSALS[name]
    setup(site)
    site.save()
    site.give_away()  # owner only: the modes the case set stay
    before = _snapshot(site)
    env = {k: v for k, v in os.environ.items() if k != "CHECK_CONFIG_TEST_UNSET_TOKEN"}
    outcome = both(site.config, env)

    check_lines = _lines(outcome.check.stderr)
    run_lines = _lines(outcome.run_stderr)
    assert outcome.check.returncode == 2, outcome.check
    assert outcome.run_rc == 2, outcome.run_stderr
    assert check_lines, outcome.check.stderr
    assert check_lines == run_lines, (outcome.check.stderr, outcome.run_stderr)
    prefix = f"scanner-agent: error: {site.config}: {key}: "
    assert check_lines[0].startswith(prefix), check_lines
    assert words in check_lines[0], check_lines
    for text in (outcome.check.stderr, outcome.run_stderr):
        assert "Traceback" not in text
    assert "stopped" not in outcome.run_stderr
    assert "running" not in outcome.run_stderr
    assert _snapshot(site) == before, "run touched the outbox directory"


def test_a_source_whose_driver_library_is_missing_is_refused_by_both(site: Site) -> None:
    """A wedge source needs python-evdev; without it ``run`` failed at start after
    check-config said OK."""
    import importlib.util

    if importlib.util.find_spec("evdev") is not None:
        pytest.skip("python-evdev is installed here: nothing is missing")
    site.data["source"] = [{"type": "wedge", "device": "/dev/input/event0"}]
    site.save()
    site.give_away()
    outcome = both(site.config)
    check_lines, run_lines = _lines(outcome.check.stderr), _lines(outcome.run_stderr)
    assert (outcome.check.returncode, outcome.run_rc) == (2, 2), outcome
    assert check_lines == run_lines
    assert f"{site.config}: source[0].type: the wedge driver needs evdev" in check_lines[0]
    assert "stopped" not in outcome.run_stderr


def test_every_refusal_names_the_user_when_it_is_about_access(site: Site) -> None:
    """A permission refusal says whose access was checked."""
    _outbox_dir_mode(0o500)(site)
    site.save()
    site.give_away()
    outcome = both(site.config)
    user = "nobody" if os.geteuid() == 0 else _me()
    assert f"{user} cannot create files in" in outcome.check.stderr
    assert "scanner-agent: hint: `sudo install -d -o" in outcome.check.stderr


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def test_an_accepted_config_says_which_user_it_was_checked_for(site: Site) -> None:
    site.save()
    site.give_away()
    done = check_config(site.config)
    user = "nobody" if os.geteuid() == 0 else _me()
    assert done.returncode == 0, done.stderr
    assert f"checked as user {user}" in done.stdout
    assert not (site.root / "data" / "outbox.db").exists(), "check-config created the outbox"


def test_a_port_the_running_agent_holds_is_no_refusal(site: Site) -> None:
    """``check-config`` runs before ``systemctl reload``, while the agent holds its ports:
    the listen check must not take a port in use for a bad address."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        site.data["source"] = [
            {"type": "tcp", "listen": f"127.0.0.1:{port}"},
            {"type": "tcp", "listen": f"localhost:{port + 1 if port < 65535 else port - 1}"},
            {"type": "tcp", "listen": "127.0.0.1:0"},
            {"type": "tcp", "listen": "127.0.0.1:0"},
            {"type": "replay", "path": "-"},
        ]
        site.save()
        site.give_away()
        done = check_config(site.config)
    assert done.returncode == 0, done.stderr
    assert "OK (5 sources" in done.stdout


def test_check_config_as_root_checks_for_the_named_user(site: Site) -> None:
    """``--user`` (and, as root, the service user) is whom the access checks are for."""
    if os.geteuid() != 0:
        pytest.skip("only root can look at the files as another user")
    site.save()
    os.chown(site.root / "token", NOBODY, NOBODY)  # root keeps the outbox directory
    done = check_config(site.config, "--user", "nobody", as_agent_user=False)
    assert done.returncode == 2
    assert "outbox.path: nobody cannot enter" in done.stderr
    site.give_away()
    done = check_config(site.config, "--user", "nobody", "--json", as_agent_user=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["checked_as"] == "nobody"


def test_an_allowed_insecure_url_warns_in_both_commands(site: Site) -> None:
    site.set("sync", url="http://192.0.2.10:8900", allow_insecure_http=True)
    site.save()
    site.give_away()
    done = check_config(site.config)
    assert done.returncode == 0, done.stderr
    assert "warning: sync.url: plain http:// to '192.0.2.10'" in done.stderr
    log = site.root / "run.log"
    with log.open("wb") as err:
        runner = subprocess.Popen(
            [*as_user(), *AGENT, "run", "--config", str(site.config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:

        def running() -> bool:
            assert runner.poll() is None, log.read_text()
            return "scanner-agent running" in log.read_text()

        wait_for(running, RUN_DEADLINE_S, "run to start")
        assert "sync.url: plain http:// to '192.0.2.10', allowed by" in log.read_text()
    finally:
        runner.terminate()
        runner.wait(timeout=RUN_DEADLINE_S)
