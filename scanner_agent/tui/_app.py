"""The TUI's two apps: one dock's (:class:`DispatchApp`) and several docks' (:class:`DocksApp`).

An app holds the styles and the command palette; what a clerk sees and does is
on its screens: :class:`~scanner_agent.tui._dispatch_screen.DispatchScreen`
(one dock in full) and :class:`~scanner_agent.tui._docks_screen.DocksScreen`
(the overview, over which each dock's screen opens and is kept).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import tzinfo
from pathlib import PurePath
from typing import Any, ClassVar

from textual.app import App, SystemCommand
from textual.screen import Screen

from scanner_agent.tui._agent import AgentLink
from scanner_agent.tui._dispatch_screen import DispatchScreen
from scanner_agent.tui._docks_screen import Dock, DocksScreen


class DispatchApp(App[None]):
    """One dock's dispatch terminal: the app around its :class:`DispatchScreen`."""

    CSS_PATH: ClassVar[str | PurePath | list[str | PurePath] | None] = ["global.tcss", "app.tcss"]
    TITLE = "scanner-agent"
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        agent: AgentLink,
        *,
        tz: tzinfo | None = None,
        blink: bool = True,
        **options: Any,
    ) -> None:
        """Attach to ``agent``; ``tz``, ``blink`` and ``options`` as :class:`DispatchScreen`'s."""
        super().__init__()
        self.tz = tz
        """The zone times are shown in (dialogs read it from the app)."""
        self.blink = blink
        self.dispatch = DispatchScreen(agent, tz=tz, blink=blink, **options)

    def get_default_screen(self) -> Screen[Any]:
        """The dock's screen is the app's first."""
        return self.dispatch

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The palette: every key's action, plus Textual's own."""
        yield from super().get_system_commands(screen)
        yield from self.dispatch.system_commands()


class DocksApp(App[None]):
    """One clerk, several docks: the overview, and each dock's full view from it."""

    CSS_PATH: ClassVar[str | PurePath | list[str | PurePath] | None] = ["global.tcss", "app.tcss"]
    TITLE = "scanner-agent docks"
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        docks: list[tuple[str, AgentLink]],
        *,
        tz: tzinfo | None = None,
        blink: bool = True,
        poll_s: float = 2.0,
        reconnect_s: float = 1.0,
        selected: int = 0,
        **dock_options: Any,
    ) -> None:
        """Watch ``docks`` (name, agent); ``dock_options`` go to each dock's
        :class:`DispatchScreen` (``bell``...), with ``tz``, ``blink``, ``poll_s`` and
        ``reconnect_s``, which the overview uses too."""
        super().__init__()
        self.tz = tz
        """The zone times are shown in (dialogs read it from the app)."""
        self.blink = blink
        self.overview = DocksScreen(
            docks, poll_s=poll_s, reconnect_s=reconnect_s, selected=selected, tz=tz
        )
        self.overview.dock_options = {
            "tz": tz,
            "blink": blink,
            "poll_s": poll_s,
            "reconnect_s": reconnect_s,
            **dock_options,
        }

    @property
    def docks(self) -> list[Dock]:
        """What the overview knows of each dock."""
        return self.overview.docks

    def get_default_screen(self) -> Screen[Any]:
        """The overview is the app's first screen; the docks' screens go over it."""
        return self.overview

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The palette: Textual's own, and a dock's keys while its screen is shown."""
        yield from super().get_system_commands(screen)
        if isinstance(screen, DispatchScreen):
            yield from screen.system_commands()
