"""Command palette: jump to any repo, environment or deploy by name or SHA."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Matcher, Provider
from textual.content import Content

from vmkit_tui.domain.text import sanitise


class DeployCommands(Provider):
    def _targets(self) -> list[tuple[str, str, str | None, str | None, str]]:
        """(label, repo, environment, deploy id, help) for everything navigable."""
        app = self.app
        overview = app.overview  # type: ignore[attr-defined]
        targets: list[tuple[str, str, str | None, str | None, str]] = []
        for repo in overview.repos:
            targets.append((sanitise(f"repo {repo}"), repo, None, None, "show this repository"))
            for env in overview.environments.get(repo, []):
                label = sanitise(f"env {repo} {env}")
                targets.append((label, repo, env, None, "show this environment"))
                for record in overview.deploys.get((repo, env), []):
                    sha = record.deploy.sha[:12]
                    label = sanitise(f"deploy {sha} {repo} {env} {sanitise(record.title)[:40]}")
                    targets.append(
                        (label, repo, env, record.id, f"{record.status.value}, {record.deploy.sha}")
                    )
        return targets

    def _deploy_sha_hit(self) -> tuple[str, str] | None:
        """ "Deploy a SHA…" for the selected environment, unless read-only."""
        app = self.app
        if getattr(app, "readonly", True) or not getattr(app, "environment", None):
            return None
        return "Deploy a SHA…", f"deploy any commit's image to {app.repo} / {app.environment}"  # type: ignore[attr-defined]

    async def discover(self) -> Hits:
        if (deploy := self._deploy_sha_hit()) is not None:
            yield DiscoveryHit(Content(deploy[0]), self.app.action_deploy_sha, help=deploy[1])  # type: ignore[attr-defined]
        for label, repo, env, deploy_id, help_text in self._targets():
            if deploy_id is None:
                yield DiscoveryHit(
                    Content(label), partial(self._go, repo, env, None), help=help_text
                )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        query_lower = query.strip().lower()
        if (deploy := self._deploy_sha_hit()) is not None:
            score, offsets = matcher.fuzzy_search.match(matcher.query, deploy[0])
            if score > 0:
                content = _highlight(deploy[0], matcher, offsets)
                yield Hit(score, content, self.app.action_deploy_sha, help=deploy[1])  # type: ignore[attr-defined]
        for label, repo, env, deploy_id, help_text in self._targets():
            if deploy_id is None:
                score, offsets = matcher.fuzzy_search.match(matcher.query, label)
            else:  # thousands of deploys: a substring test each, not a fuzzy match
                found = query_lower and (query_lower in label.lower() or query_lower in help_text)
                score, offsets = (0.9 if found else 0.0), ()
            if score > 0:
                yield Hit(
                    score,
                    _highlight(label, matcher, offsets),
                    partial(self._go, repo, env, deploy_id),
                    help=help_text,
                )

    def _go(self, repo: str, env: str | None, deploy_id: str | None) -> None:
        self.app.select(repo, env, deploy_id)  # type: ignore[attr-defined]


def _highlight(label: str, matcher: Matcher, offsets: Sequence[int]) -> Content:
    """Like `Matcher.highlight`, which parses the candidate as markup: labels hold commit
    messages from outside, so they stay plain `Content` here."""
    content = Content(label)
    for offset in offsets:
        content = content.stylize(matcher.match_style, offset, offset + 1)
    return content
