"""The udev rules: generated from the firmware profiles, checked in, and well-formed."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from drivers import profiles
from scanner_agent.cli import ops as cli_ops
from scanner_agent.ops.layout import RULES_NAME
from scanner_agent.ops.udev import generate_udev_rules, udev_devices
from tests.support.systemd import SYSTEMD_DIR

RULES = SYSTEMD_DIR / RULES_NAME

MATCH_ONLY = {"ACTION", "SUBSYSTEM", "SUBSYSTEMS", "KERNEL", "KERNELS", "DRIVERS", "ATTRS", "ATTR"}
ASSIGN_ONLY = {"GROUP", "MODE", "OWNER", "SYMLINK", "IMPORT", "GOTO", "LABEL", "RUN"}
EITHER = {"ENV", "TAG"}
"""udev(7): keys that only match, only assign, or do both."""
WITH_ATTRIBUTE = {"ATTRS", "ATTR", "ENV", "IMPORT", "RUN"}
MATCH_OPS = {"==", "!="}
ASSIGN_OPS = {"=", "+=", "-=", ":="}
SERVICE_GROUP = "scanner-agent"
"""The only group a scanner node may be given: the service's own (not plugdev, not dialout)."""

_TOKEN = re.compile(
    r'(?P<key>[A-Z_]+)(?:\{(?P<attr>[^}]+)\})?(?P<op>==|!=|\+=|-=|:=|=)"(?P<value>[^"]*)"'
)


@dataclass(frozen=True)
class Token:
    key: str
    attr: str | None
    op: str
    value: str


def parse_rules(text: str) -> list[list[Token]]:
    """Each rule line as tokens; raises AssertionError naming the first bad line."""
    rules = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tokens = []
        for part in line.split(", "):
            m = _TOKEN.fullmatch(part.strip())
            assert m, f"line {number}: cannot parse {part!r}"
            tok = Token(m["key"], m["attr"], m["op"], m["value"])
            where = f"line {number}: {part}"
            assert tok.key in MATCH_ONLY | ASSIGN_ONLY | EITHER, f"{where}: unknown key"
            assert (tok.attr is not None) == (tok.key in WITH_ATTRIBUTE), f"{where}: attribute"
            if tok.key in MATCH_ONLY:
                assert tok.op in MATCH_OPS, f"{where}: {tok.key} only matches"
            elif tok.key in ASSIGN_ONLY:
                assert tok.op in ASSIGN_OPS, f"{where}: {tok.key} only assigns"
            else:
                assert tok.op in MATCH_OPS | ASSIGN_OPS, where
            if tok.key in ("GOTO", "LABEL"):
                assert tok.op == "=", where
            if tok.key == "MODE":
                assert re.fullmatch(r"0[0-7]{3}", tok.value), f"{where}: octal mode"
            if tok.key == "GROUP":
                assert tok.value == SERVICE_GROUP, f"{where}: not the service's own group"
            tokens.append(tok)
        assert tokens, f"line {number}: empty rule"
        rules.append(tokens)
    labels = {t.value for r in rules for t in r if t.key == "LABEL"}
    gotos = {t.value for r in rules for t in r if t.key == "GOTO"}
    assert gotos <= labels, f"GOTO without LABEL: {gotos - labels}"
    return rules


def _node_rule(rules: list[list[Token]], vid: int, pid: int) -> list[Token]:
    wanted = {("ATTRS", "idVendor", f"{vid:04x}"), ("ATTRS", "idProduct", f"{pid:04x}")}
    for rule in rules:
        if wanted <= {(t.key, t.attr, t.value) for t in rule if t.op == "=="}:
            return rule
    raise AssertionError(f"no rule for {vid:04x}:{pid:04x}")


def _assigned(rule: list[Token]) -> dict[str, str]:
    return {(f"{t.key}{{{t.attr}}}" if t.attr else t.key): t.value for t in rule if t.op == "="}


def test_checked_in_rules_are_what_the_profiles_generate() -> None:
    assert RULES.read_text() == generate_udev_rules(), (
        "systemd/60-scanner-agent.rules is stale: run "
        "`scanner-agent udev-rules -o systemd/60-scanner-agent.rules`"
    )


def test_every_rule_line_is_well_formed() -> None:
    parse_rules(RULES.read_text())


def test_every_usb_id_in_the_profiles_gets_group_access_and_a_profile_name() -> None:
    rules = parse_rules(RULES.read_text())
    devices = udev_devices(profiles.load_all())
    assert devices, "the shipped profiles list USB ids"
    for d in devices:
        assigned = _assigned(_node_rule(rules, d.vid, d.pid))
        assert assigned["GROUP"] == SERVICE_GROUP
        assert assigned["MODE"] == "0660"
        assert assigned["ENV{SCANNER_AGENT_PROFILE}"] == d.profile_ids[0]
        cdc = d.mode in ("cdc-acm", "ssi-cdc")
        assert (assigned.get("ENV{ID_MM_DEVICE_IGNORE}") == "1") == cdc, d


def test_cdc_scanners_are_hidden_from_modemmanager_on_the_usb_device_too() -> None:
    rules = parse_rules(RULES.read_text())
    cdc = [d for d in udev_devices(profiles.load_all()) if d.mode == "cdc-acm"]
    assert cdc
    for d in cdc:
        assert any(
            {("ATTR", "idVendor", f"{d.vid:04x}"), ("ATTR", "idProduct", f"{d.pid:04x}")}
            <= {(t.key, t.attr, t.value) for t in rule}
            and ("ENV", "ID_MM_DEVICE_IGNORE", "1") in {(t.key, t.attr, t.value) for t in rule}
            for rule in rules
        ), d


def test_matched_scanners_get_a_stable_name_and_the_systemd_tag() -> None:
    text = RULES.read_text()
    rules = parse_rules(text)
    symlinks = [t.value for r in rules for t in r if t.key == "SYMLINK"]
    assert "scanner/$env{SCANNER_AGENT_PROFILE}-$env{ID_SERIAL_SHORT}" in symlinks
    tags = {(t.key, t.attr, t.op, t.value) for r in rules for t in r}
    assert ("TAG", None, "+=", "systemd") in tags
    assert ("ENV", "SYSTEMD_WANTS", "+=", "scanner-agent.service") in tags
    # The common tail runs only for devices a profile rule marked.
    tail = text.index('ENV{SCANNER_AGENT_PROFILE}!="?*", GOTO="scanner_agent_end"')
    assert text.index("SYMLINK+=") > tail
    assert text.index('TAG+="systemd"') > tail


def test_a_site_profile_adds_its_scanner(tmp_path: Path) -> None:
    (tmp_path / "acme-x1.toml").write_text(
        '[profile]\nvendor = "Acme"\nmodel = "X1"\ninterfaces = ["hid-pos"]\n'
        '[[usb.ids]]\nmode = "hid-pos"\nvid = 0x1234\npid = 0xABCD\n'
    )
    rules = parse_rules(generate_udev_rules([tmp_path]))
    rule = _node_rule(rules, 0x1234, 0xABCD)
    assert ("SUBSYSTEM", "==", "hidraw") in {(t.key, t.op, t.value) for t in rule}
    assert _assigned(rule)["ENV{SCANNER_AGENT_PROFILE}"] == "acme-x1"


def test_udev_rules_command_checks_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_ops.main(["udev-rules", "--check", str(RULES)]) == 0
    stale = tmp_path / RULES_NAME
    stale.write_text(RULES.read_text().replace("0660", "0666"))
    assert cli_ops.main(["udev-rules", "--check", str(stale)]) == 3
    assert "out of date" in capsys.readouterr().err
    out = tmp_path / "out.rules"
    assert cli_ops.main(["udev-rules", "-o", str(out)]) == 0
    assert out.read_text() == RULES.read_text()


def test_udevadm_verify_accepts_the_rules() -> None:
    udevadm = shutil.which("udevadm")
    if udevadm is None:
        pytest.skip("udevadm not installed (Debian package 'udev')")
    probe = subprocess.run([udevadm, "verify", "--help"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("this udevadm has no 'verify' (added in systemd 254)")
    result = subprocess.run(
        [udevadm, "verify", "--no-style", str(RULES)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
