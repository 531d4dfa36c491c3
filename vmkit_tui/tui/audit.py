"""`a`: a deploy's full audit trail — every recorded event: when, what, who, from where."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from vmkit_tui.models import DeployEvent, DeployRecord, EventKind
from vmkit_tui.text import plain

# data keys worth showing, in this order, when an event carries them
_DATA_KEYS = (
    "actor",
    "trigger",
    "action",
    "strategy",
    "target_sha",
    "request_id",
    "run_id",
    "cause",
    "fix",
)


def describe(event: DeployEvent, record: DeployRecord) -> str:
    """One line for an event, from the recorded facts only."""
    if event.kind is EventKind.CREATED:
        deploy = record.deploy
        what = f"recorded: {deploy.triggered_by.value} by {deploy.actor}"
        if deploy.rollback_of:
            what += f", rollback of deploy {deploy.rollback_of}"
    elif event.kind is EventKind.STATUS and event.status is not None:
        what = f"status → {event.status.value}"
    else:
        what = event.kind.value.replace("_", " ")
    details = [event.detail] if event.detail else []
    details += [
        f"{key}={event.data[key]}" for key in _DATA_KEYS if event.data.get(key) not in (None, "")
    ]
    return plain(" · ".join([what, *details]))


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
                    f"Audit trail · {plain(deploy.repo)} / {plain(deploy.environment)} · {deploy.sha}",
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
                Text(describe(event, self.record)),
            )
        table.focus()

    def action_close(self) -> None:
        self.dismiss()
