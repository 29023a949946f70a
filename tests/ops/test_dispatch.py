"""Dispatch clerks reach the control socket and nothing else (docs/operations.md).

The installed layout is built in a throwaway root exactly as the install makes it: the sysusers
entry (users and groups), the tmpfiles entry (directories and secret file modes), the default
config (``[control]``: socket path, group, mode) and the unit (``RuntimeDirectory=`` and its
mode, as systemd creates it).  Then real processes with dropped privileges try: a clerk (only in
the dispatch group), the service user (with the unit's groups), and an outsider.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner_agent.ops.layout import DISPATCH_GROUP, SERVICE_USER, SUPPLEMENTARY_GROUPS
from tests.support.systemd import SYSTEMD_DIR, tool, unit_settings

SYSTEM_PYTHON = "/usr/bin/python3"
"""The probes run as other users: a system interpreter they may execute (not root's pyenv)."""

PROBE = r"""
import json, os, socket, sys
out = {}
sock = socket.socket(socket.AF_UNIX)
try:
    sock.connect(sys.argv[1])
    out["socket"] = "ok"
except OSError as exc:
    out["socket"] = exc.strerror
for name in sys.argv[2:]:
    try:
        if os.path.isdir(name):
            os.listdir(name)
        else:
            open(name, "rb").close()
        out[name] = "ok"
    except OSError as exc:
        out[name] = exc.strerror
print(json.dumps(out))
"""


def _ids(root: Path, file: str) -> dict[str, list[str]]:
    return {
        line.split(":")[0]: line.split(":")
        for line in (root / "etc" / file).read_text().splitlines()
    }


@pytest.fixture
def root() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("drops privileges to other users: run as root")
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"{SYSTEM_PYTHON} is needed to run the probes as other users")
    top = Path(tempfile.mkdtemp(prefix="scanner-agent-dispatch-"))
    top.chmod(0o755)  # every user must be able to enter it, as /
    # The root's own directories (etc, run, var/lib) are 0755 as on a real system, whatever
    # umask this process has: `run` called in-process by an earlier test leaves 0027, and the
    # clerk then failed at /run, not at the socket under test.
    old_umask = os.umask(0o022)
    try:
        yield top
    finally:
        os.umask(old_umask)
        shutil.rmtree(top)


def test_a_clerk_reaches_the_control_socket_but_no_secret(root: Path) -> None:
    sysusers, tmpfiles = tool("systemd-sysusers"), tool("systemd-tmpfiles")
    (root / "etc").mkdir()
    conf_sysusers = SYSTEMD_DIR / "scanner-agent.sysusers.conf"
    conf_tmpfiles = SYSTEMD_DIR / "scanner-agent.tmpfiles.conf"
    subprocess.run([sysusers, f"--root={root}", str(conf_sysusers)], check=True, timeout=60)
    subprocess.run(
        [tmpfiles, f"--root={root}", "--create", str(conf_tmpfiles)], check=True, timeout=60
    )
    passwd, group = _ids(root, "passwd"), _ids(root, "group")
    uid, gid = int(passwd[SERVICE_USER][2]), int(passwd[SERVICE_USER][3])
    dispatch = int(group[DISPATCH_GROUP][2])
    # Only the service user is in its own group; it is in the dispatch group too.
    assert group[SERVICE_USER][3] == ""
    assert group[DISPATCH_GROUP][3].split(",") == [SERVICE_USER]

    # The files an administrator adds, then tmpfiles' z lines as at every boot.
    conf = root / "etc/scanner-agent"
    shutil.copy(SYSTEMD_DIR / "agent.toml", conf / "agent.toml")
    (conf / "token").write_text("a-secret-token\n")
    (conf / "alihealth.secret").write_text("a-secret-app-secret\n")
    subprocess.run(
        [tmpfiles, f"--root={root}", "--create", str(conf_tmpfiles)], check=True, timeout=60
    )
    outbox = root / "var/lib/scanner-agent/outbox.db"
    outbox.write_bytes(b"")
    os.chown(outbox, uid, gid)
    outbox.chmod(0o640)  # what the daemon's umask (the unit's UMask=0027) gives it

    # The runtime directory as systemd makes it from the unit, the socket as the config says.
    unit = unit_settings(SYSTEMD_DIR / "scanner-agent.service")
    control = tomllib.loads((SYSTEMD_DIR / "agent.toml").read_text())["control"]
    assert control["group"] == DISPATCH_GROUP
    assert set(unit["SupplementaryGroups"][0].split()) == set(SUPPLEMENTARY_GROUPS)
    run_dir = root / "run" / unit["RuntimeDirectory"][0]
    run_dir.mkdir(parents=True)
    run_dir.chmod(int(unit["RuntimeDirectoryMode"][0], 8))
    os.chown(run_dir, uid, gid)
    assert Path(control["socket"]).parent == Path("/run") / unit["RuntimeDirectory"][0]
    sock_path = run_dir / Path(control["socket"]).name
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    server.listen(8)
    sock_path.chmod(int(control["mode"], 8))
    os.chown(sock_path, uid, dispatch)

    secrets = [conf / "token", conf / "alihealth.secret", outbox, outbox.parent]

    def probe(as_uid: int, as_gid: int, groups: list[int]) -> dict[str, str]:
        def drop() -> None:
            os.setgroups(groups)
            os.setgid(as_gid)
            os.setuid(as_uid)

        done = subprocess.run(
            [SYSTEM_PYTHON, "-c", PROBE, str(sock_path), *map(str, secrets)],
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=drop,  # the point: another user, real permission checks
            cwd="/",
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, str] = json.loads(done.stdout)
        return result

    with server:
        clerk = probe(64010, 64010, [dispatch])
        service = probe(uid, gid, [gid, dispatch])
        outsider = probe(64011, 64011, [])
    assert clerk["socket"] == "ok"
    for secret in secrets:
        assert clerk[str(secret)] == "Permission denied", (secret, clerk)
    assert all(value == "ok" for value in service.values()), service
    assert outsider["socket"] == "Permission denied"
    assert all(outsider[str(s)] == "Permission denied" for s in secrets), outsider
