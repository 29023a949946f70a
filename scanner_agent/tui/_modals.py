"""Dialogs: open a bill, give a reason, confirm closing, import a file, search a code."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from rich.text import Text
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from scanner_agent.bills import BillError, bill_types, parse_param_pairs
from scanner_agent.times import local
from scanner_agent.tui._format import result_text

_T = TypeVar("_T")


def _when(screen: ModalScreen[Any], at: str | None) -> str:
    """An ISO 8601 time as ``YYYY-MM-DD HH:MM:SS CST``, in the app's zone (local by default)."""
    return local(at, getattr(screen.app, "tz", None))


def _no_blink(screen: ModalScreen[Any]) -> None:
    blink = bool(getattr(screen.app, "blink", True))
    for inp in screen.query(Input):
        inp.cursor_blink = blink


class Dialog(ModalScreen[_T]):
    """A dialog whose fields take keystrokes at any speed, Tab and Enter included.

    Textual hands each key to the widget focused when the app reads it, and an
    Input passes Tab on to the screen later, from its own queue: a keyboard-wedge
    burst (``SO-R1``, Tab, Tab, ``FROM1``) reached the Input before the Tab moved
    focus, and landed in the first field.  Here Tab and Shift+Tab are priority
    keys: the app moves focus the moment it reads them, so every later key goes
    to the next field.  Enter on a field first lets every field handle the keys
    queued before it (a callback queued behind them), takes each field's value
    at that point, then calls :meth:`submit` with them; keys after the Enter
    (the next scan) are never part of it.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("tab", "move_focus(1)", "Next", show=False, priority=True),
        Binding("shift+tab", "move_focus(-1)", "Previous", show=False, priority=True),
        Binding("enter", "submit_fields", "Submit", show=False, priority=True),
    ]

    CLEAR_ON_SUBMIT: ClassVar[bool] = False
    """Empty the focused field once submitted (a search: the next scan starts afresh)."""

    def _field_focused(self) -> Widget:
        """The focused field or button; any other widget (an open list) keeps its own keys."""
        focused = self.focused
        if isinstance(focused, Input | Select | Button):
            return focused
        raise SkipAction

    def action_move_focus(self, step: int) -> None:
        """Tab / Shift+Tab, at once."""
        self._field_focused()
        if step > 0:
            self.focus_next()
        else:
            self.focus_previous()

    def action_submit_fields(self) -> None:
        """Enter on a field: submit once every field has its keys; elsewhere, its own Enter."""
        field = self._field_focused()
        if not isinstance(field, Input):
            raise SkipAction  # a button presses, a select opens
        inputs = list(self.query(Input))
        values: dict[str, str] = {}

        def taken(inp: Input) -> None:
            values[str(inp.id)] = inp.value
            if inp is field and self.CLEAR_ON_SUBMIT:
                inp.value = ""
            if len(values) == len(inputs) and self.is_attached:
                self.submit(values, field)

        for inp in inputs:
            inp.call_later(taken, inp)

    def submit(self, values: dict[str, str], field: Input) -> None:
        """Enter was pressed on ``field``; ``values``: every field's text then, by id."""
        raise NotImplementedError

    def action_cancel(self) -> None:
        self.dismiss(None)  # every dialog's "nothing" is None


class OpenBillScreen(Dialog[dict[str, Any] | None]):
    """Number, type, parties, optional platform params: the ``bill.open`` arguments or ``None``.

    Params are ``NAME=VALUE`` separated by spaces (quote a value with spaces:
    ``from_address="浦东 1号"``).
    """

    def __init__(self, *, default_type: int = 201, number: str = "") -> None:
        super().__init__()
        self.default_type = default_type
        self.number = number

    def compose(self) -> ComposeResult:
        options = [(f"{t.code} {t.zh} {t.en}", t.code) for t in bill_types().values()]
        with Vertical(classes="dialog"):
            yield Label("Open a bill (出入库单据)", classes="dialog-title")
            with Horizontal(classes="field"):
                yield Label("Number", classes="field-label")
                yield Input(value=self.number, placeholder="bill number", id="number", compact=True)
            with Horizontal(classes="field"):
                yield Label("Type", classes="field-label")
                yield Select(
                    options, value=self.default_type, allow_blank=False, id="type", compact=True
                )
            with Horizontal(classes="field"):
                yield Label("From", classes="field-label")
                yield Input(placeholder="shipper", id="from", compact=True)
            with Horizontal(classes="field"):
                yield Label("To", classes="field-label")
                yield Input(placeholder="receiver", id="to", compact=True)
            with Horizontal(classes="field"):
                yield Label("Params", classes="field-label")
                yield Input(
                    placeholder="码上放心 NAME=VALUE ... (optional)", id="params", compact=True
                )
            yield Static(id="open-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Open", variant="primary", id="ok", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        _no_blink(self)
        self.query_one("#number", Input).focus()

    def _fields(self) -> dict[str, str]:
        return {str(inp.id): inp.value for inp in self.query(Input)}

    def _submit(self, values: dict[str, str]) -> None:
        number = values["number"].strip()
        if not number:
            self.query_one("#open-error", Static).update("A bill number is required.")
            self.query_one("#number", Input).focus()
            return
        try:
            params = parse_param_pairs(shlex.split(values["params"]))
        except (BillError, ValueError) as exc:  # ValueError: shlex, an unclosed quote
            self.query_one("#open-error", Static).update(f"Params: {exc}")
            self.query_one("#params", Input).focus()
            return
        args: dict[str, Any] = {
            "number": number,
            "type": self.query_one("#type", Select).value,
            "from": values["from"].strip(),
            "to": values["to"].strip(),
        }
        if params:
            args["params"] = params  # names and values are checked by the agent
        self.dismiss(args)

    def submit(self, values: dict[str, str], field: Input) -> None:
        """Enter on any field opens at once: every field but the number is optional."""
        self._submit(values)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self._submit(self._fields())
        else:
            self.dismiss(None)


class ReasonScreen(Dialog[str | None]):
    """Ask why (undo, remove): returns the reason or ``None``."""

    def __init__(self, title: str, *, detail: Text | str = "", default: str = "") -> None:
        """``detail`` names what is removed (the scan's time, code and product)."""
        super().__init__()
        self.title_text = title
        self.detail = detail
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            if self.detail:
                yield Static(self.detail, id="reason-detail", classes="dialog-detail")
            with Horizontal(classes="field"):
                yield Label("Reason", classes="field-label")
                yield Input(
                    value=self.default,
                    placeholder="kept in the bill's log",
                    id="reason",
                    compact=True,
                )
            yield Static(id="reason-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Remove", variant="error", id="ok", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        _no_blink(self)
        self.query_one("#reason", Input).focus()

    def _submit(self, reason: str) -> None:
        if not reason.strip():
            self.query_one("#reason-error", Static).update("A reason is required.")
            return
        self.dismiss(reason.strip())

    def submit(self, values: dict[str, str], field: Input) -> None:
        """Enter gives the reason."""
        self._submit(values["reason"])

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self._submit(self.query_one("#reason", Input).value)
        else:
            self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no, with a text that says what happens."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "answer(False)", "No"),
        Binding("y", "answer(True)", "Yes"),
    ]

    def __init__(self, title: str, body: Text | str, *, yes: str = "Yes") -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.body)
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.yes, variant="primary", id="ok", compact=True)
                yield Button("No", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "ok")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class PathScreen(Dialog[str | None]):
    """Ask for a file path (CSV import)."""

    def __init__(self, title: str, *, placeholder: str = "path to a CSV file") -> None:
        super().__init__()
        self.title_text = title
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            with Horizontal(classes="field"):
                yield Label("File", classes="field-label")
                yield Input(placeholder=self.placeholder, id="path", compact=True)
            yield Static(
                "Expected list: product,name,count (or 药品标识码,名称,数量). UTF-8.",
                classes="dialog-help",
            )

    def on_mount(self) -> None:
        _no_blink(self)
        self.query_one("#path", Input).focus()

    def submit(self, values: dict[str, str], field: Input) -> None:
        """Enter gives the path."""
        if values["path"].strip():
            self.dismiss(values["path"].strip())


class SearchScreen(Dialog[None]):
    """Search a code's history (the dock's screen runs the lookup and calls :meth:`show`).

    The field empties on Enter, so scan after scan each looks up its own code.
    """

    CLEAR_ON_SUBMIT = True

    def __init__(self, lookup: Callable[[str], None]) -> None:
        """``lookup(code)`` asks the agent; the answer comes back through :meth:`show`."""
        super().__init__()
        self.lookup = lookup

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-wide"):
            yield Label("Code history: scan or type a code, Enter", classes="dialog-title")
            with Horizontal(classes="field"):
                yield Label("Code", classes="field-label")
                yield Input(placeholder="scan or type", id="code", compact=True)
            yield Static(id="search-head")
            table: DataTable[Any] = DataTable(id="search-table", cursor_type="row")
            table.add_column("when", width=23)
            table.add_column("what", width=10)
            table.add_column("bill", width=16)
            table.add_column("detail")
            yield table

    def on_mount(self) -> None:
        _no_blink(self)
        self.query_one("#code", Input).focus()

    def submit(self, values: dict[str, str], field: Input) -> None:
        """Enter looks the code up."""
        code = values["code"].strip()
        if code:
            self.query_one("#search-head", Static).update("searching…")
            self.lookup(code)

    def show(self, history: dict[str, Any]) -> None:
        """Draw a ``lookup`` result."""
        head = Text.assemble((history["code"], "bold"), "  ", history.get("name") or "")
        if history.get("carton"):
            head.append(f"  carton of {history['units']}")
        if not (history["scans"] or history["refused"]):
            head.append("  — never scanned here", style="yellow")
        self.query_one("#search-head", Static).update(head)
        table = self.query_one("#search-table", DataTable)
        table.clear()
        rows: list[tuple[str, str, str, str]] = []
        for s in history["scans"]:
            what = result_text(s).plain
            rows.append(
                (s["scanned_at"], s["action"], s["bill"], f"{what} {s.get('reason') or ''}")
            )
        for r in history["refused"]:
            times = (
                f" ×{r['count']}, last {_when(self, r['last_at'])}" if r.get("count", 1) > 1 else ""
            )
            rows.append((r["scanned_at"], "refused", "", f"{r['reason']}{times}"))
        for r in history["removals"]:
            rows.append((r["removed_at"], "removal", r["bill"], r["reason"]))
        for when, what, bill, detail in sorted(rows):
            table.add_row(_when(self, when), what, bill, detail)

    def show_error(self, message: str) -> None:
        """Say why the lookup failed."""
        self.query_one("#search-head", Static).update(Text(message, style="bold red"))

    def action_cancel(self) -> None:
        self.dismiss(None)
