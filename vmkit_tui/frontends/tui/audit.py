"""`a`: a deploy's full audit trail — every recorded event: when, what, who, from where."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from vmkit_tui.domain.models import DeployRecord
from vmkit_tui.domain.text import sanitise
from vmkit_tui.frontends.present import event_line


class AuditScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,a", "close", "Close", id="audit.close")
    ]

    def __init__(self, record: DeployRecord) -> None:
        super().__init__()
        self.record = record

    def compose(self) -> ComposeResult:
        deploy = self.record.deploy
        with Vertical(id="audit-box"):
            yield Static(
                Text(
                    sanitise(f"Audit trail · {deploy.repo} / {deploy.environment} · {deploy.sha}"),
                    style="bold",
                ),
                id="audit-title",
            )
            yield DataTable(id="audit-events", cursor_type="row")

    def on_mount(self) -> None:
        table: DataTable[Text] = self.query_one(DataTable)
        table.add_columns("#", "When (UTC)", "Event")
        for event in self.record.events:
            table.add_row(
                Text(str(event.seq)),
                Text(event.at.strftime("%Y-%m-%d %H:%M:%S")),
                Text(event_line(event, self.record)),
            )
        table.focus()

    def action_close(self) -> None:
        self.dismiss()
