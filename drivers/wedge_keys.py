"""Keyboard-wedge decoding: evdev key events in, frames of text out.

A scanner in keyboard mode "types" each bar code.  Read from the Linux input
layer (``/dev/input/event*``) it is a stream of ``(code, value)`` key events --
``value`` 1 = down, 0 = up, 2 = auto-repeat -- which :class:`WedgeDecoder` turns
back into text through a keyboard layout table, tracking Shift, Caps Lock,
AltGr, Ctrl, Alt and Num Lock.  Only key-downs produce text; Enter or keypad
Enter ends a frame.  Key codes are the Linux ``input-event-codes.h`` numbers
(``KEY_A = 30`` ...), defined here so no evdev binding is needed.

Layouts (the host's layout setting, which the scanner's "keyboard country"
must match): ``us``; ``uk`` (``gb``); ``de`` (German QWERTZ, with the dead keys
``^`` and the acute/grave key); ``fr`` (French AZERTY, dead ``^``/``¨``).  Tables
follow the xkeyboard-config "basic" variants.

Control characters, which GS1 data needs (GS = 0x1D separates fields):

* **Ctrl + key.**  Ctrl with a key whose character (at the current Shift/AltGr
  level) is ``@``, a letter, ``[``, ``\\``, ``]``, ``^`` or ``_`` gives that
  character's control code (``]`` -> GS).  In addition Ctrl + ``KEY_RIGHTBRACE``
  -- the key right of P, ``]`` on US and UK keyboards -- gives GS on *every*
  layout.  On German and French layouts ``]`` is AltGr+9 and AltGr+) instead,
  and that physical key is ``+`` or ``$``; we accept both forms because
  scanners differ in whether they send Ctrl with the US key position or with
  the layout's ``]`` key.
* **Alt + keypad digits.**  Alt held, a decimal number typed on the keypad,
  Alt released gives that character: ``Alt, KP0 KP0 KP2 KP9, release`` -> GS.
  A leading 0 selects Windows-1252 and no leading 0 code page 437 for values
  above 127, as on Windows (values below 128 are ASCII either way).

Frames are the text encoded as UTF-8.  Caps Lock and Num Lock start in the
states given to the decoder (the LED state is not visible in key events);
Caps Lock only flips letters whose Shift level is their upper case.

>>> d = WedgeDecoder("us")
>>> d.feed([(KEY_A, 1), (KEY_A, 0), (KEY_1, 1), (KEY_1, 0), (KEY_ENTER, 1)])
[Frame(data=b'a1')]
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from drivers.framing import DEFAULT_MAX_FRAME, Frame, FrameError, FrameEvent

# Linux input-event-codes.h key codes.
KEY_ESC = 1
KEY_1, KEY_2, KEY_3, KEY_4, KEY_5, KEY_6, KEY_7, KEY_8, KEY_9, KEY_0 = range(2, 12)
KEY_MINUS = 12
KEY_EQUAL = 13
KEY_BACKSPACE = 14
KEY_TAB = 15
KEY_Q, KEY_W, KEY_E, KEY_R, KEY_T, KEY_Y, KEY_U, KEY_I, KEY_O, KEY_P = range(16, 26)
KEY_LEFTBRACE = 26
KEY_RIGHTBRACE = 27
KEY_ENTER = 28
KEY_LEFTCTRL = 29
KEY_A, KEY_S, KEY_D, KEY_F, KEY_G, KEY_H, KEY_J, KEY_K, KEY_L = range(30, 39)
KEY_SEMICOLON = 39
KEY_APOSTROPHE = 40
KEY_GRAVE = 41
KEY_LEFTSHIFT = 42
KEY_BACKSLASH = 43
KEY_Z, KEY_X, KEY_C, KEY_V, KEY_B, KEY_N, KEY_M = range(44, 51)
KEY_COMMA = 51
KEY_DOT = 52
KEY_SLASH = 53
KEY_RIGHTSHIFT = 54
KEY_KPASTERISK = 55
KEY_LEFTALT = 56
KEY_SPACE = 57
KEY_CAPSLOCK = 58
KEY_NUMLOCK = 69
KEY_KP7, KEY_KP8, KEY_KP9 = 71, 72, 73
KEY_KPMINUS = 74
KEY_KP4, KEY_KP5, KEY_KP6 = 75, 76, 77
KEY_KPPLUS = 78
KEY_KP1, KEY_KP2, KEY_KP3 = 79, 80, 81
KEY_KP0 = 82
KEY_KPDOT = 83
KEY_102ND = 86
KEY_KPENTER = 96
KEY_RIGHTCTRL = 97
KEY_KPSLASH = 98
KEY_RIGHTALT = 100

KEYPAD_DIGITS: Mapping[int, str] = MappingProxyType(
    {
        KEY_KP0: "0",
        KEY_KP1: "1",
        KEY_KP2: "2",
        KEY_KP3: "3",
        KEY_KP4: "4",
        KEY_KP5: "5",
        KEY_KP6: "6",
        KEY_KP7: "7",
        KEY_KP8: "8",
        KEY_KP9: "9",
    }
)
"""Keypad digit keys (with Num Lock on)."""

GS = "\x1d"
"""Group separator: the FNC1 stand-in between GS1 element strings."""

_DEAD_COMBINING = {"^": "\u0302", "¨": "\u0308", "´": "\u0301", "`": "\u0300", "~": "\u0303"}
_CONTROL_BASE = "@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_"
_MAX_ALT_DIGITS = 6


@dataclass(frozen=True, slots=True)
class KeyboardLayout:
    """Characters per key code at three levels: plain, Shift, AltGr."""

    name: str
    keys: Mapping[int, tuple[str, str, str]]
    """Key code -> (plain, Shift, AltGr); ``""`` where a level has no character."""
    dead: frozenset[tuple[int, int]] = frozenset()
    """(key code, level) pairs that are dead keys (accent, then the next character)."""
    altgr: bool = True
    """Right Alt is AltGr (False on US, where it is a second Alt)."""
    keypad_decimal: str = "."
    """Character of the keypad decimal key."""


def _rows(
    *rows: tuple[int, str, str],
    extra: Mapping[int, tuple[str, str]] | None = None,
    altgr: Mapping[int, str] | None = None,
) -> dict[int, tuple[str, str, str]]:
    """Build a key table from runs of consecutive key codes."""
    keys: dict[int, tuple[str, str, str]] = {}
    for first, plain, shifted in rows:
        assert len(plain) == len(shifted), (plain, shifted)
        for offset, (p, s) in enumerate(zip(plain, shifted, strict=True)):
            keys[first + offset] = (p, s, "")
    for code, (p, s) in (extra or {}).items():
        keys[code] = (p, s, "")
    for code, a in (altgr or {}).items():
        p, s, _ = keys.get(code, ("", "", ""))
        keys[code] = (p, s, a)
    keys[KEY_SPACE] = (" ", " ", " ")
    keys[KEY_TAB] = ("\t", "\t", "")
    return keys


_US = KeyboardLayout(
    "us",
    _rows(
        (KEY_1, "1234567890-=", "!@#$%^&*()_+"),
        (KEY_Q, "qwertyuiop[]", "QWERTYUIOP{}"),
        (KEY_A, "asdfghjkl;'`", 'ASDFGHJKL:"~'),
        (KEY_Z, "zxcvbnm,./", "ZXCVBNM<>?"),
        extra={KEY_BACKSLASH: ("\\", "|"), KEY_102ND: ("<", ">")},
    ),
    altgr=False,
)

_UK = KeyboardLayout(
    "uk",
    _rows(
        (KEY_1, "1234567890-=", '!"£$%^&*()_+'),
        (KEY_Q, "qwertyuiop[]", "QWERTYUIOP{}"),
        (KEY_A, "asdfghjkl;'`", "ASDFGHJKL:@¬"),
        (KEY_Z, "zxcvbnm,./", "ZXCVBNM<>?"),
        extra={KEY_BACKSLASH: ("#", "~"), KEY_102ND: ("\\", "|")},
        altgr={KEY_4: "€", KEY_GRAVE: "¦"},
    ),
)

_DE = KeyboardLayout(
    "de",
    _rows(
        (KEY_1, "1234567890ß´", '!"§$%&/()=?`'),
        (KEY_Q, "qwertzuiopü+", "QWERTZUIOPÜ*"),
        (KEY_A, "asdfghjklöä^", "ASDFGHJKLÖÄ°"),
        (KEY_Z, "yxcvbnm,.-", "YXCVBNM;:_"),
        extra={KEY_BACKSLASH: ("#", "'"), KEY_102ND: ("<", ">")},
        altgr={
            KEY_2: "²",
            KEY_3: "³",
            KEY_7: "{",
            KEY_8: "[",
            KEY_9: "]",
            KEY_0: "}",
            KEY_MINUS: "\\",
            KEY_Q: "@",
            KEY_E: "€",
            KEY_RIGHTBRACE: "~",
            KEY_M: "µ",
            KEY_102ND: "|",
        },
    ),
    dead=frozenset({(KEY_EQUAL, 0), (KEY_EQUAL, 1), (KEY_GRAVE, 0)}),
    keypad_decimal=",",
)

_FR_KEYS = _rows(
    (KEY_1, "&é\"'(-è_çà)=", "1234567890°+"),
    (KEY_Q, "azertyuiop^$", "AZERTYUIOP¨£"),
    (KEY_A, "qsdfghjklmù", "QSDFGHJKLM%"),
    (KEY_Z, "wxcvbn,;:!", "WXCVBN?./§"),
    extra={KEY_GRAVE: ("²", ""), KEY_BACKSLASH: ("*", "µ"), KEY_102ND: ("<", ">")},
    altgr={
        KEY_2: "~",
        KEY_3: "#",
        KEY_4: "{",
        KEY_5: "[",
        KEY_6: "|",
        KEY_7: "`",
        KEY_8: "\\",
        KEY_9: "^",
        KEY_0: "@",
        KEY_MINUS: "]",
        KEY_EQUAL: "}",
        KEY_E: "€",
        KEY_RIGHTBRACE: "¤",
    },
)

_FR = KeyboardLayout("fr", _FR_KEYS, dead=frozenset({(KEY_LEFTBRACE, 0), (KEY_LEFTBRACE, 1)}))

LAYOUTS: Mapping[str, KeyboardLayout] = MappingProxyType(
    {"us": _US, "uk": _UK, "gb": _UK, "de": _DE, "fr": _FR}
)
"""Known layouts by name (``gb`` is an alias of ``uk``)."""


def _alt_code(digits: str) -> str:
    value = int(digits) % 256
    if value < 128:
        return chr(value)
    codec = "cp1252" if digits.startswith("0") else "cp437"
    return bytes((value,)).decode(codec, errors="replace")


@dataclass(slots=True)
class _State:
    shift: set[int] = field(default_factory=set)
    ctrl: set[int] = field(default_factory=set)
    alt: set[int] = field(default_factory=set)
    altgr: bool = False
    alt_digits: str = ""
    dead: str = ""


class WedgeDecoder:
    """Turn key events into frames of text (see the module docstring).

    ``feed`` takes ``(code, value)`` pairs and returns the frames completed by
    Enter; text longer than ``max_frame`` bytes (UTF-8) is dropped up to the
    next Enter and reported as a :class:`~drivers.framing.FrameError`.
    """

    def __init__(
        self,
        layout: str = "us",
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        capslock: bool = False,
        numlock: bool = True,
    ) -> None:
        try:
            self.layout = LAYOUTS[layout.lower()]
        except KeyError:
            raise ValueError(
                f"Failed to use {layout!r} as keyboard layout: expected one of {sorted(LAYOUTS)}"
            ) from None
        if max_frame < 1:
            raise ValueError(f"Failed to use max_frame={max_frame}: expected a positive size")
        self.max_frame = max_frame
        self.capslock = capslock
        """Caps Lock state (toggled by Caps Lock key-downs)."""
        self.numlock = numlock
        """Num Lock state (toggled by Num Lock key-downs)."""
        self._state = _State()
        self._text: list[str] = []
        self._size = 0
        self._discarding = False
        self.discarded_bytes = 0
        """Total bytes of text dropped because a frame was over-long."""

    @property
    def buffered(self) -> int:
        """Bytes of text waiting for Enter (never more than ``max_frame``)."""
        return self._size

    def feed(self, events: Iterable[tuple[int, int]]) -> list[FrameEvent]:
        """Process key events; return the frames (and errors) they complete."""
        out: list[FrameEvent] = []
        for code, value in events:
            if value in (0, 1):
                self._key(code, value == 1, out)
        return out

    def _key(self, code: int, down: bool, out: list[FrameEvent]) -> None:
        st = self._state
        layout = self.layout
        if code in (KEY_LEFTSHIFT, KEY_RIGHTSHIFT):
            (st.shift.add if down else st.shift.discard)(code)
            return
        if code in (KEY_LEFTCTRL, KEY_RIGHTCTRL):
            (st.ctrl.add if down else st.ctrl.discard)(code)
            return
        if code == KEY_RIGHTALT and layout.altgr:
            st.altgr = down
            return
        if code in (KEY_LEFTALT, KEY_RIGHTALT):
            if down:
                st.alt.add(code)
                return
            st.alt.discard(code)
            if not st.alt and st.alt_digits:
                digits, st.alt_digits = st.alt_digits, ""
                self._emit(_alt_code(digits), out)
            return
        if not down:
            return
        if code == KEY_CAPSLOCK:
            self.capslock = not self.capslock
        elif code == KEY_NUMLOCK:
            self.numlock = not self.numlock
        elif code in (KEY_ENTER, KEY_KPENTER):
            self._end_frame(out)
        elif st.alt:
            if code in KEYPAD_DIGITS and len(st.alt_digits) < _MAX_ALT_DIGITS:
                st.alt_digits += KEYPAD_DIGITS[code]
        elif st.ctrl:
            self._control(code, out)
        else:
            self._printable(code, out)

    def _level(self, code: int) -> int:
        st = self._state
        if st.altgr:
            return 2
        shift = bool(st.shift)
        plain, shifted, _ = self.layout.keys[code]
        if self.capslock and plain.isalpha() and shifted == plain.upper() != plain:
            shift = not shift
        return 1 if shift else 0

    def _keypad(self, code: int) -> str:
        if code in KEYPAD_DIGITS:
            return KEYPAD_DIGITS[code] if self.numlock else ""
        if code == KEY_KPDOT:
            return self.layout.keypad_decimal if self.numlock else ""
        return {KEY_KPSLASH: "/", KEY_KPASTERISK: "*", KEY_KPMINUS: "-", KEY_KPPLUS: "+"}.get(
            code, ""
        )

    def _control(self, code: int, out: list[FrameEvent]) -> None:
        if code == KEY_RIGHTBRACE:
            self._emit(GS, out)
            return
        if code not in self.layout.keys:
            return
        char = self.layout.keys[code][self._level(code)].upper()
        if len(char) == 1 and char in _CONTROL_BASE:
            self._emit(chr(ord(char) - 0x40), out)

    def _printable(self, code: int, out: list[FrameEvent]) -> None:
        char = self._keypad(code)
        if not char and code in self.layout.keys:
            level = self._level(code)
            char = self.layout.keys[code][level]
            if char and (code, level) in self.layout.dead:
                st = self._state
                if st.dead:
                    self._emit(st.dead, out)
                st.dead = char
                return
        if char:
            self._emit(char, out)

    def _emit(self, char: str, out: list[FrameEvent]) -> None:
        st = self._state
        if st.dead:
            dead, st.dead = st.dead, ""
            if char == " ":
                char = dead
            else:
                composed = unicodedata.normalize("NFC", char + _DEAD_COMBINING[dead])
                char = composed if len(composed) == 1 else dead + char
        size = len(char.encode("utf-8"))
        if self._discarding:
            self.discarded_bytes += size
            return
        if self._size + size > self.max_frame:
            dropped = self._size + size
            self.discarded_bytes += dropped
            out.append(FrameError(f"frame too long (over {self.max_frame} bytes)", dropped))
            self._text.clear()
            self._size = 0
            self._discarding = True
            return
        self._text.append(char)
        self._size += size

    def _end_frame(self, out: list[FrameEvent]) -> None:
        st = self._state
        if st.dead:
            dead, st.dead = st.dead, ""
            self._emit(dead, out)
        if self._discarding:
            self._discarding = False
        elif self._text:
            out.append(Frame("".join(self._text).encode("utf-8")))
        self._text.clear()
        self._size = 0
