"""Firmware profiles: every shipped profile loads; broken ones name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers import hidpos, honeywell, profiles, ssi
from drivers.profiles import ProfileError, load_profile, parse_profile

SHIPPED = profiles.list_profiles()
DOC = Path(__file__).resolve().parents[2] / "docs" / "firmware-profiles.md"

MINIMAL = """
[profile]
vendor = "Acme"
model = "S1"
interfaces = ["rs232", "cdc-acm"]
"""


def write(directory: Path, stem: str, text: str) -> Path:
    path = directory / f"{stem}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_required_models_are_shipped() -> None:
    expected = {
        "honeywell-xenon-1900g",
        "honeywell-xenon-1902g",
        "honeywell-xenon-1950g",
        "honeywell-voyager-1250g",
        "honeywell-voyager-1450g",
        "zebra-ls2208",
        "zebra-ds2208",
        "zebra-ds4608",
        "datalogic-quickscan-qd2430",
        "newland-hr22",
        "newland-hr32",
        "generic-serial",
        "generic-hidpos",
        "generic-wedge",
    }
    assert expected <= set(SHIPPED)
    assert any(stem.startswith("opticon-") for stem in SHIPPED)


@pytest.mark.parametrize("stem", SHIPPED)
def test_every_shipped_profile_loads_and_is_consistent(stem: str) -> None:
    profile = load_profile(stem)
    assert profile.id == stem
    assert profile.vendor
    assert profile.model
    for usb_id in profile.usb_ids:
        assert usb_id.mode in profile.interfaces
    if profile.hidpos_layout is not None:
        assert profile.hidpos_layout in hidpos.LAYOUTS
        assert profile.hidpos_report_layout is not None
    if "hid-pos" in profile.interfaces:
        assert profile.hidpos_report_layout is not None


def test_validate_all_reports_no_error_for_the_shipped_profiles() -> None:
    assert profiles.validate_all() == []


def test_usb_ids_do_not_collide_between_shipped_model_profiles() -> None:
    seen: dict[tuple[int, int], str] = {}
    for profile in profiles.load_all():
        for usb_id in profile.usb_ids:
            key = (usb_id.vid, usb_id.pid)
            assert key not in seen, f"{profile.id} and {seen.get(key)} share {key}"
            seen[key] = profile.id


def test_match_usb_finds_the_profile_and_mode() -> None:
    matches = profiles.match_usb(0x1EAB, 0x1A10)
    assert [(p.id, mode) for p, mode in matches] == [("newland-hr22", "hid-pos")]
    assert profiles.match_usb(0xFFFF, 0xFFFF) == []


def test_honeywell_trigger_commands_are_compiled_to_bytes() -> None:
    commands = load_profile("honeywell-xenon-1900g").commands
    assert commands.trigger_on == honeywell.TRIGGER_ON
    assert commands.trigger_off == honeywell.TRIGGER_OFF


def test_shipped_profiles_are_package_resources() -> None:
    from importlib import resources

    names = {entry.name for entry in resources.files("firmware_profiles").iterdir()}
    assert "__init__.py" in names
    assert {f"{stem}.toml" for stem in SHIPPED} <= names


def test_broken_profile_error_names_file_key_and_value(tmp_path: Path) -> None:
    write(tmp_path, "x", MINIMAL + "[serial]\nbaudrate = 1234\n")
    with pytest.raises(ProfileError) as info:
        load_profile("x", [tmp_path])
    message = str(info.value)
    assert message.startswith(
        "Failed to load profile 'x.toml': [serial].baudrate: expected one of ["
    )
    assert message.endswith("got 1234")


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("[serial]\nspeed = 9600\n", "[serial].speed"),
        ("[extras]\na = 1\n", "extras"),
        ("[serial]\nparity = 'N'\n", "[serial].parity"),
        ("[serial]\nstopbits = true\n", "[serial].stopbits"),
        ("[framing]\nmax_frame = 0\n", "[framing].max_frame"),
        ("[framing]\naim_prefix = 'yes'\n", "[framing].aim_prefix"),
        ("[framing]\nterminator = '\u4e2d'\n", "[framing].terminator"),
        ("[hidpos]\nlayout = 'acme'\n", "[hidpos].layout"),
        ("[hidpos]\n", "[hidpos].layout"),
        ("[commands]\nbeep = 'x'\n", "[commands].beep"),
        ("[commands]\ngood_read = 5\n", "[commands].good_read"),
        ("[commands]\ngood_read = { ssi = 'NOPE' }\n", "[commands].good_read.ssi"),
        ("[commands]\ngood_read = { ssi = 'BEEP', data = [256] }\n", "[commands].good_read.data"),
        (
            "[commands]\ngood_read = { honeywell_menu = [['BE', 'LVL', '0']] }\n",
            "[commands].good_read.honeywell_menu",
        ),
        ("[commands]\ngood_read = { other = 1 }\n", "[commands].good_read"),
        ("[quirks]\nmodemmanager_probes = 1\n", "[quirks].modemmanager_probes"),
        ("[quirks]\nnotes = 3\n", "[quirks].notes"),
        ("[[usb.ids]]\nmode = 'hid-pos'\nvid = 1\npid = 2\n", "[[usb.ids]][0].mode"),
        ("[[usb.ids]]\nmode = 'cdc-acm'\nvid = 0x10000\npid = 2\n", "[[usb.ids]][0].vid"),
        ("[[usb.ids]]\nmode = 'cdc-acm'\nvid = 1\n", "[[usb.ids]][0].pid"),
        (
            "[[usb.ids]]\nmode = 'cdc-acm'\nvid = 1\npid = 2\nserial = 'x'\n",
            "[[usb.ids]][0].serial",
        ),
    ],
)
def test_each_invalid_value_or_unknown_key_is_named(extra: str, key: str) -> None:
    with pytest.raises(ProfileError, match=rf"^Failed to load profile 'x\.toml': {_re(key)}: "):
        parse_profile("x", MINIMAL + extra)


HP = "[hidpos]\nlayout = 'honeywell'\n"
HIDPOS_MINIMAL = MINIMAL.replace('"cdc-acm"]', '"hid-pos"]')


@pytest.mark.parametrize(
    ("extra", "key", "message"),
    [
        (HP + "report_size = 0\n", "[hidpos].report_size", "expected an integer in 1..4096, got 0"),
        (HP + "report_size = 5000\n", "[hidpos].report_size", "in 1..4096"),
        (
            HP + "report_size = 32\n",
            "[hidpos].report_size",
            "the data (bytes 5..60) ends past the report size (32 bytes)",
        ),
        (
            HP + "continuation_offset = 64\n",
            "[hidpos].continuation_offset",
            "byte 64 is outside the 64-byte report (bytes 0..63)",
        ),
        (
            HP + "aim_offset = 1\n",
            "[hidpos].aim_offset",
            "the AIM identifier (bytes 1..3) overlaps the length byte (bytes 1..1)",
        ),
        (HP + "data_offset = 4\n", "[hidpos].data_offset", "overlaps the AIM identifier"),
        (HP + "length_offset = 0\n", "[hidpos].length_offset", "overlaps the report ID"),
        (HP + "report_id = 0\n", "[hidpos].report_id", "in 1..255 or false (none), got 0"),
        (HP + "report_id = true\n", "[hidpos].report_id", "got True"),
        (HP + "data_size = false\n", "[hidpos].data_size", "expected an integer in 1..4096, got"),
        (HP + "data_offset = 'five'\n", "[hidpos].data_offset", "got 'five'"),
        (HP + "continuation_mask = 256\n", "[hidpos].continuation_mask", "in 1..255, got 256"),
        (HP + "continuation_bit = 0\n", "[hidpos].continuation_bit", "unknown key"),
        (
            "[hidpos]\nreport_size = 64\nreport_id = 2\n",
            "[hidpos].data_offset",
            "missing required key (without 'layout', [hidpos] must give every one of",
        ),
    ],
)
def test_invalid_hidpos_layout_keys_are_named(extra: str, key: str, message: str) -> None:
    with pytest.raises(ProfileError) as info:
        parse_profile("x", HIDPOS_MINIMAL + extra)
    assert str(info.value).startswith(f"Failed to load profile 'x.toml': {key}: ")
    assert message in str(info.value)


def test_validate_names_the_layout_key_of_a_broken_site_profile(tmp_path: Path) -> None:
    write(tmp_path, "acme-s9", HIDPOS_MINIMAL + "[hidpos]\nlayout = 'newland'\ndata_size = 62\n")
    write(tmp_path, "acme-s10", HIDPOS_MINIMAL + "[hidpos]\nlayout = 'newland'\ndata_size = 63\n")
    assert profiles.validate_all([tmp_path]) == [
        "Failed to load profile 'acme-s10.toml': [hidpos].data_size: the data (bytes 2..64) "
        "ends past the report size (64 bytes)",
        "Failed to load profile 'acme-s9.toml': [hidpos].data_size: the continuation flag "
        "(bytes 63..63) overlaps the data (bytes 2..63)",
    ]


def test_hidpos_layout_keys_resolve_against_the_named_layout() -> None:
    named = parse_profile("x", HIDPOS_MINIMAL + HP)
    assert named.hidpos_report_layout == hidpos.LAYOUTS["honeywell"]
    changed = parse_profile("x", HIDPOS_MINIMAL + HP + "report_id = false\nlength_offset = false\n")
    layout = changed.hidpos_report_layout
    assert layout is not None
    assert (layout.report_id, layout.length_offset, layout.aim_offset) == (None, None, 2)
    assert parse_profile("x", MINIMAL).hidpos_report_layout is None


def _re(key: str) -> str:
    import re

    return re.escape(key)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("", "[profile]"),
        ("[profile]\nmodel = 'S1'\ninterfaces = ['rs232']\n", "[profile].vendor"),
        ("[profile]\nvendor = 'A'\nmodel = 'S1'\ninterfaces = []\n", "[profile].interfaces"),
        ("[profile]\nvendor = 'A'\nmodel = 'S1'\ninterfaces = ['usb']\n", "[profile].interfaces"),
        ("[profile]\nvendor = 'A'\nmodel = ''\ninterfaces = ['rs232']\n", "[profile].model"),
        ("[profile\n", "toml"),
    ],
)
def test_missing_or_malformed_profile_table_is_named(text: str, key: str) -> None:
    with pytest.raises(ProfileError, match=rf"^Failed to load profile 'x\.toml': {_re(key)}"):
        parse_profile("x", text)


def test_profile_id_must_be_a_plain_stem() -> None:
    with pytest.raises(ProfileError, match="id: expected lower-case"):
        parse_profile("Bad Name", MINIMAL)


def test_structured_commands_compile_to_protocol_bytes() -> None:
    text = MINIMAL + (
        "[commands]\n"
        "trigger_on = { ssi = 'START_DECODE' }\n"
        "good_read = { ssi = 'BEEP', data = [0] }\n"
        "aim_on = { honeywell_menu = [['PRE', 'BK2', '995D']], permanent = true }\n"
        'suffix_cr = "\\u0016M\\rSUFBK20D!"\n'
    )
    commands = parse_profile("x", text).commands
    assert commands.trigger_on == ssi.start_decode()
    assert commands.good_read == ssi.beep(0)
    assert commands.aim_on == b"\x16M\rPREBK2995D."
    assert commands.suffix_cr == b"\x16M\rSUFBK20D!"
    assert commands.bad_read is None


def test_terminator_accepts_a_name_or_bytes() -> None:
    named = parse_profile("x", MINIMAL + "[framing]\nterminator = 'CRLF'\n")
    raw = parse_profile("x", MINIMAL + '[framing]\nterminator = "\\u0003"\n')
    assert named.framing.terminator == b"\r\n"
    assert raw.framing.terminator == b"\x03"


def test_site_directory_adds_and_overrides_profiles(tmp_path: Path) -> None:
    write(tmp_path, "acme-s1", MINIMAL)
    write(tmp_path, "generic-serial", MINIMAL)
    assert "acme-s1" in profiles.list_profiles([tmp_path])
    assert load_profile("generic-serial", [tmp_path]).vendor == "Acme"
    assert load_profile("generic-serial").vendor == "Generic"


def test_missing_extra_directory_is_ignored(tmp_path: Path) -> None:
    assert profiles.list_profiles([tmp_path / "absent"]) == SHIPPED


def test_unknown_profile_is_an_error() -> None:
    with pytest.raises(ProfileError, match=r"'nope\.toml': no such profile"):
        load_profile("nope")


def test_validate_all_lists_broken_site_profiles_and_load_all_skips_them(tmp_path: Path) -> None:
    write(tmp_path, "broken", MINIMAL + "[serial]\nbaudrate = 1234\n")
    errors = profiles.validate_all([tmp_path])
    assert len(errors) == 1
    assert "'broken.toml': [serial].baudrate" in errors[0]
    assert "broken" not in {p.id for p in profiles.load_all([tmp_path])}


def test_unreadable_profile_is_reported(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ProfileError, match=r"'bad\.toml'"):
        load_profile("bad", [tmp_path])


def test_docs_describe_every_table_key_and_choice() -> None:
    doc = DOC.read_text(encoding="utf-8")
    words = [
        "vendor",
        "model",
        "interfaces",
        "[[usb.ids]]",
        "mode",
        "vid",
        "pid",
        "baudrate",
        "bytesize",
        "parity",
        "stopbits",
        "flow_control",
        "protocol",
        "terminator",
        "aim_prefix",
        "max_frame",
        "layout",
        "modemmanager_probes",
        "notes",
        "honeywell_menu",
        "permanent",
        *profiles.COMMAND_NAMES,
        *profiles.INTERFACES,
        *profiles.FLOW_CONTROLS,
        *profiles.PROTOCOLS,
        *hidpos.LAYOUTS,
        *hidpos.FIELDS,
    ]
    missing = [word for word in words if word not in doc]
    assert missing == []
