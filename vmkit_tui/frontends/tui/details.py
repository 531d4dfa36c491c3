"""The selected deploy's facts: full SHA, who and how, run link, UTC times, duration, steps.

Built as `Text` with every remote value appended as plain text (never markup).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widgets import Static

from vmkit_tui.domain.eligibility import RollbackEligibility
from vmkit_tui.domain.models import DeployRecord, DurationBasis
from vmkit_tui.domain.text import sanitise
from vmkit_tui.domain.updates import StepProgress
from vmkit_tui.frontends.present import format_duration


class DeployDetails(Static):
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "details--label",
        "details--step-done",
        "details--step-running",
        "details--step-failed",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, markup=False)
        self.record: DeployRecord | None = None
        self.steps: tuple[StepProgress, ...] = ()
        self.rollback_target: DeployRecord | None = None
        self.eligibility: RollbackEligibility | None = None
        self._shown: tuple[object, ...] = ()

    def show(
        self,
        record: DeployRecord | None,
        steps: tuple[StepProgress, ...] = (),
        rollback_target: DeployRecord | None = None,
        eligibility: RollbackEligibility | None = None,
    ) -> None:
        self.record = record
        self.steps = steps
        self.rollback_target = rollback_target
        self.eligibility = eligibility
        self._show_text()

    def on_resize(self) -> None:
        self._show_text()  # the step breadcrumbs fit the width

    def _show_text(self) -> None:
        """Update only when the text changed: it is asked for at every change in the open
        environment, and each update lays out the whole screen again (the pane's height
        follows its text)."""
        text = self._render_text()
        shown = (text.plain, text.spans, text.style)  # Text's == leaves out its base style
        if shown != self._shown:
            self._shown = shown
            self.update(text)

    def _render_text(self) -> Text:
        record = self.record
        if record is None:
            return Text("No deploy selected.", self.get_component_rich_style("details--label"))
        facts = self._facts(record)
        if not self.steps:
            return facts
        steps = self._steps_text()
        if record.status.is_active:  # progress first: it is what a small screen must keep
            return Text("\n").join([steps, facts])
        return Text("\n").join([facts, steps])

    def _facts(self, record: DeployRecord) -> Text:
        label = self.get_component_rich_style("details--label")
        deploy = record.deploy
        text = Text(no_wrap=False)

        def field(name: str, value: str) -> None:
            if text:
                text.append("  ")
            text.append(f"{name} ", label)
            text.append(sanitise(value))

        field("SHA", deploy.sha)
        if self.eligibility is not None and self.eligibility.checked_at is not None:
            # which host lacks the container, what GHCR said (the column's `?` says the rest)
            field("back", f"{self.eligibility.state.value}: {self.eligibility.reason}")
        field("by", f"{deploy.actor} ({deploy.triggered_by.value})")
        field("created", deploy.created_at.strftime("%Y-%m-%d %H:%M:%SZ"))
        if record.started_at:
            field("started", record.started_at.strftime("%H:%M:%SZ"))
        if record.finished_at:
            field("finished", record.finished_at.strftime("%H:%M:%SZ"))
        duration = record.duration
        if duration:
            basis = (
                "to first healthy response"
                if duration[1] is DurationBasis.FIRST_HEALTHY
                else "to run completion"
            )
            field("took", f"{format_duration(duration[0])} ({basis})")
        if deploy.rollback_of:
            target = self.rollback_target
            field(
                "rollback of",
                f"{target.deploy.short_sha} (deploy {deploy.rollback_of})"
                if target
                else deploy.rollback_of,
            )
        if record.run_url:
            field("run", record.run_url)

        if record.title:
            text.append("\n")
            text.append(sanitise(record.title))
        return text

    def _steps_text(self) -> Text:
        """One breadcrumb per job, each kept to one line: when the whole job does not fit, its
        finished steps are counted and only the current one is named."""
        width = max(20, self.content_region.width)
        jobs: dict[str, list[StepProgress]] = {}
        for step in self.steps:
            jobs.setdefault(step.job, []).append(step)
        return Text("\n").join(self._job_line(job, steps, width) for job, steps in jobs.items())

    def _job_line(self, job: str, steps: list[StepProgress], width: int) -> Text:
        label = self.get_component_rich_style("details--label")
        head = Text(f"{sanitise(job)}: ", label)
        full = head + Text(" › ").join(self._step(step) for step in steps)
        if full.cell_len <= width:
            return full
        current = next(
            (
                i
                for i, s in enumerate(steps)
                if s.status != "completed" or s.conclusion == "failure"
            ),
            len(steps) - 1,
        )
        parts = []
        if current:
            parts.append(
                Text(f"✓ {current} done", self.get_component_rich_style("details--step-done"))
            )
        parts.append(self._step(steps[current]))
        if current + 1 < len(steps):
            parts.append(Text(f"{len(steps) - current - 1} more", label))
        line = head + Text(" › ").join(parts)
        line.truncate(width, overflow="ellipsis")
        return line

    def _step(self, step: StepProgress) -> Text:
        if step.status == "completed":
            style = "details--step-failed" if step.conclusion == "failure" else "details--step-done"
        elif step.status == "in_progress":
            style = "details--step-running"
        else:
            style = "details--label"
        return Text(sanitise(step.step), self.get_component_rich_style(style))
