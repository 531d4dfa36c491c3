"""The team's shared history: GitHub Deployments beside the local file.

`TeamShare` does the three things `domain/deployments.py` describes in pure terms:
- `claim`: before an action dispatches anything, create its deployment, then refuse if an older
  vmkit deployment on the environment is still unfinished (ours is withdrawn as `inactive`);
- `flush`: write what a record's outbox holds (its deployment, then its statuses in order),
  then a SHARED note saying so; a retry after a crash or an outage lists what GitHub already
  has first, so nothing is written twice;
- `import_round`: list the environment's deployments (a conditional GET: free when nothing
  changed) and merge other machines' deploys and facts into the local history.

A token that may not create deployments turns this into local-only mode for the process: said
once (a `SourceHealth` with key `team`), never retried in a loop. GitHub unreachable leaves the
outbox as it is; `flush` is called again after every change and on a backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vmkit_tui.config import Config, EnvironmentConfig
from vmkit_tui.domain.deployments import (
    FINAL_STATES,
    PAYLOAD_KEY,
    Claim,
    RemoteStatus,
    deployment_description,
    deployment_payload,
    deployment_task,
    import_deploy,
    import_events,
    is_imported,
    mirrors,
    needs_sharing,
    older_claim,
    run_id_of,
    shared_deployment_id,
    shared_note,
    superseded_description,
    unshared,
)
from vmkit_tui.domain.event_ids import deployment_link_id
from vmkit_tui.domain.models import DeployRecord, EventKind, NewEvent, from_iso, to_iso
from vmkit_tui.domain.updates import DeployChanged, Health, SourceHealth, Update
from vmkit_tui.sources.github import AuthError, GitHubClient, GitHubError, NotFound
from vmkit_tui.sources.github.deployments import Deployment
from vmkit_tui.store.history import AsyncHistory, HistoryError

__all__ = ["TEAM_KEY", "ClaimRefused", "Claimed", "TeamShare"]

log = logging.getLogger("vmkit_tui.tracking.team")

TEAM_KEY = "team"  # SourceHealth.key of the shared history
REPO_LIST_REUSE_S = 5.0  # a repository-wide deployment list serves its environments this long
REMEMBER_S = 3600.0  # how long a token's local-only mode is remembered across processes
LOCAL_ONLY = (
    "Local-only: this GitHub token may not create deployments (needs repo_deployment, or "
    "Deployments: write), so this history is not shared with the team"
)


class ClaimRefused(Exception):
    """An older unfinished claim holds the environment; ours was withdrawn. Says who/what."""


@dataclass(frozen=True, slots=True)
class Claimed:
    deployment_id: int | None  # None: not shared now (local-only, or GitHub unreachable)
    overridden: Claim | None = None  # the older claim `force` went past


class TeamShare:
    """One per service; shares the service's GitHub client and history."""

    def __init__(
        self,
        config: Config,
        github: GitHubClient,
        history: AsyncHistory,
        publish: Callable[[Update], None],
        *,
        now: Callable[[], datetime],
        stale_after: float = 3600.0,
        state_path: Path | None = None,
    ) -> None:
        self.config = config
        self.github = github
        self.history = history
        self.publish = publish
        self.now = now
        self.stale_after = stale_after  # a claim older than the workflow's timeout never blocks
        self.local_only: str | None = None
        self._remembered = _Remembered(state_path, github.token_fingerprint) if state_path else None
        if self._remembered is not None:
            self.local_only = self._remembered.local_only(now())
        self._flush_lock = asyncio.Lock()
        self._actions_linked: set[int] = set()  # Actions deployments tied to their run's record
        # Idle cost: an environment whose deployment list is what it was when nothing there
        # was left to follow is not looked at again; one whose records may have unshared facts
        # is "dirty" (all are at first: an earlier process may have left an outbox).
        self._settled: dict[tuple[str, str], tuple[int, ...]] = {}
        self._listed_once: set[tuple[str, str]] = set()
        self._repo_lists: dict[str, tuple[float, list[Deployment]]] = {}
        self._dirty: set[tuple[str, str]] = {
            (repo.name, env.name) for repo in config.repos for env in repo.environments
        }

    def noticed(self, record: DeployRecord) -> None:
        """A record changed (anyone's write in this process): if it has facts to write, its
        environment's outbox is looked at after the next round."""
        if self.local_only is None and needs_sharing(record):
            self._dirty.add((record.deploy.repo, record.deploy.environment))

    # ---------------------------------------------------------------- claim

    async def claim(self, record: DeployRecord, env: EnvironmentConfig, force: bool) -> Claimed:
        """Create the deployment for `record` (not yet in the history) and check it is the
        oldest unfinished one; raises `ClaimRefused` (ours withdrawn) unless `force`."""
        if self.local_only is not None:
            return Claimed(None)
        deploy = record.deploy
        try:
            mine = await self._create(record, env)
            claims = await self._claims(deploy.repo, env.name, below=mine.id)
        except (AuthError, NotFound) as error:
            if not self._go_local(deploy.repo, env.name, error):
                log.info("claim not made: %s", error)
            return Claimed(None)
        except GitHubError as error:  # unreachable: the outbox creates it later
            log.info("claim not made: %s", error)
            return Claimed(None)
        winner = older_claim(mine.id, claims)
        if winner is not None and not force:
            note = superseded_description(winner.deployment_id, winner.actor)
            try:
                await self.github.create_status(deploy.repo, mine.id, "inactive", description=note)
            except GitHubError as error:  # it stays unfinished until stale; say so, refuse anyway
                log.info("could not withdraw deployment %s: %s", mine.id, error)
            raise ClaimRefused(
                f"{winner.actor or 'someone'} is already deploying {env.name}: "
                f"{winner.description} (deployment #{winner.deployment_id}, vmkit deploy "
                f"{winner.deploy_id}); nothing was sent (force overrides this claim)"
            )
        return Claimed(mine.id, winner)

    async def _create(self, record: DeployRecord, env: EnvironmentConfig) -> Deployment:
        deploy = record.deploy
        return await self.github.create_deployment(
            deploy.repo,
            sha=deploy.sha,
            environment=env.name,
            task=deployment_task(record),
            payload=deployment_payload(record),
            description=deployment_description(record),
            transient=env.transient_environment,
            production=env.is_production,
        )

    async def _claims(self, repo: str, environment: str, *, below: int) -> list[Claim]:
        """vmkit deployments older than ours and younger than `stale_after`, with whether each
        is unfinished (no final status yet)."""
        found: list[Claim] = []
        now = self.now()
        for deployment in await self.github.list_deployments(repo, environment):
            deploy_id = deployment.payload.get(PAYLOAD_KEY)
            if deployment.id >= below or not isinstance(deploy_id, str):
                continue
            if (now - deployment.created_at).total_seconds() > self.stale_after:
                continue
            statuses = await self.github.list_statuses(repo, deployment.id, max_pages=1)
            unfinished = not statuses or statuses[0].state not in FINAL_STATES
            if unfinished and await self._finished_here(deploy_id):
                unfinished = False  # its run ended (tracking saw it) but nobody wrote that yet
            actor = str(deployment.payload.get("actor") or deployment.creator or "")
            found.append(
                Claim(
                    deployment.id,
                    deploy_id,
                    actor,
                    deployment.description,
                    deployment.created_at,
                    unfinished,
                )
            )
        return found

    def _env(self, repo: str, environment: str) -> EnvironmentConfig:
        try:
            return self.config.repo(repo).environment(environment)
        except KeyError:  # no longer configured: GitHub's defaults
            return EnvironmentConfig(environment)

    async def _finished_here(self, deploy_id: str) -> bool:
        try:
            record = await self.history.record(deploy_id)
        except (HistoryError, KeyError, ValueError):
            return False
        return record.status.is_final

    # ---------------------------------------------------------------- outbox

    async def flush_all(self, records: Sequence[DeployRecord]) -> bool:
        """Write every record's outbox, oldest record first; False if something is left."""
        done = True
        for record in sorted(records, key=lambda r: r.events[0].seq if r.events else 0):
            if needs_sharing(record):
                done = await self.flush(record) and done
        return done

    async def flush(self, record: DeployRecord) -> bool:
        """Write the record's outbox; True when nothing is left (or local-only)."""
        if self.local_only is not None:
            return True
        async with self._flush_lock:
            record = await self.history.record(record.id)  # what is stored now
            if not needs_sharing(record):
                return True
            repo, environment = record.deploy.repo, record.deploy.environment
            try:
                return await self._flush(record)
            except (AuthError, NotFound) as error:
                return self._go_local(repo, environment, error)
            except (GitHubError, HistoryError, OSError) as error:
                log.info("outbox of %s kept for later: %s", record.id, error)
                return False

    async def _flush(self, record: DeployRecord) -> bool:
        deploy = record.deploy
        deployment_id = shared_deployment_id(record)
        existing: list[RemoteStatus] = []
        if deployment_id is None:
            found = await self.github.find_deployment(deploy.repo, deploy.environment, deploy.id)
            if found is None:
                found = await self._create(record, self._env(deploy.repo, deploy.environment))
            deployment_id = found.id
        writes = unshared(record)
        if writes:
            existing = await self.github.list_statuses(deploy.repo, deployment_id)
        written: list[int] = []
        for write in writes:
            same = next(
                (
                    s
                    for s in existing
                    if (s.state, s.description) == (write.state, write.description)
                ),
                None,
            )
            if same is None:
                same = await self.github.create_status(
                    deploy.repo,
                    deployment_id,
                    write.state,
                    description=write.description,
                    log_url=write.log_url,
                )
            else:
                existing.remove(same)
            written.append(same.id)
        through = writes[-1].event_seq if writes else record.events[0].seq
        note = shared_note(record, self.now(), deployment_id, through, written)
        stored = await self.history.append_events([note])
        updated = await self.history.record(record.id)
        if stored:
            self.publish(DeployChanged(updated))
        return not needs_sharing(updated)

    # ---------------------------------------------------------------- import

    async def before_round(self, repo: str, environment: str) -> None:
        """Before a tracking round lists runs: import what others did (so a run another
        machine dispatched links to its record). A failure here never stops tracking."""
        try:
            await self.import_round(repo, environment)
        except GitHubError as error:
            log.info("team history of %s %s not imported: %s", repo, environment, error)

    async def after_round(self, repo: str, environment: str) -> None:
        """After it: write what the round (or an earlier outage) left in the outbox."""
        key = (repo, environment)
        if self.local_only is None and key in self._dirty:
            self._dirty.discard(key)
            records = await self.history.records(repo, environment)
            if not await self.flush_all([r for r in records if needs_sharing(r)]):
                self._dirty.add(key)  # GitHub is down: again after the next round

    async def import_round(self, repo: str, environment: str) -> None:
        """Merge the environment's deployments into the history (one conditional list; the
        statuses only of deployments that are new here or still unfinished here)."""
        async with self._flush_lock:  # never import a status our flush is writing
            await self._import_round(repo, environment)

    async def _listed(self, repo: str, environment: str) -> list[Deployment]:
        """The environment's newest deployments. Its first round asks for the environment's
        own list (a new machine rebuilds from it); later ones share one repository-wide list
        (100 newest) between the repository's environments for REPO_LIST_REUSE_S, so idle
        tracking costs one free conditional request per repository, not per environment."""
        if (repo, environment) not in self._listed_once:
            found = await self.github.list_deployments(repo, environment)
            self._listed_once.add((repo, environment))
            return found
        fetched = self._repo_lists.get(repo)
        clock = time.monotonic()
        if fetched is None or clock - fetched[0] > REPO_LIST_REUSE_S:
            fetched = (clock, await self.github.list_deployments(repo, None, per_page=100))
            self._repo_lists[repo] = fetched
        return [d for d in fetched[1] if d.environment == environment]

    async def _import_round(self, repo: str, environment: str) -> None:
        deployments = await self._listed(repo, environment)
        key, ids = (repo, environment), tuple(d.id for d in deployments)
        if self._settled.get(key) == ids:
            return  # the same list (a 304), and nothing on it was left to follow
        self._settled.pop(key, None)
        if await self._merge(repo, environment, deployments):
            self._settled[key] = ids

    async def adopt(self, repo: str, environment: str, deploy_ids: set[str]) -> bool:
        """Runs a teammate's vmkit-tui dispatched, not recorded here yet: record their deploys
        from their deployments first (same id, actor, rollback_of), so tracking links each run
        to that record instead of making one from the run alone. True if any was recorded."""
        try:
            async with self._flush_lock:
                known = {r.id for r in await self.history.records(repo, environment)}
                if deploy_ids <= known:
                    return False
                listed = await self.github.list_deployments(repo, environment, per_page=100)
                wanted = [d for d in listed if d.payload.get(PAYLOAD_KEY) in deploy_ids - known]
                if wanted:
                    await self._merge(repo, environment, wanted, dispatched=True)
                return bool(wanted)
        except GitHubError as error:
            log.info("teammates' deploys on %s %s not adopted: %s", repo, environment, error)
            return False

    async def _merge(
        self,
        repo: str,
        environment: str,
        deployments: list[Deployment],
        *,
        dispatched: bool = False,
    ) -> bool:
        """Import the listed deployments (`dispatched`: their runs exist, so they are deploys
        even without a status yet); True when none is left to follow (all final here, or not
        ours to follow)."""
        settled = True
        records = {r.id: r for r in await self.history.records(repo, environment)}
        # With the environment's history full, a deployment older than all it keeps was pruned
        # here: importing it again would only be pruned again, every round.
        full = len(records) >= self.history.history.keep
        oldest = min((r.deploy.created_at for r in records.values()), default=None)
        for deployment in reversed(deployments):  # oldest first: claims and ids in order
            deploy_id = deployment.payload.get(PAYLOAD_KEY)
            if not isinstance(deploy_id, str):
                settled = await self._link_actions_deployment(repo, deployment) and settled
                continue
            known = records.get(deploy_id)
            if known is not None and (known.status.is_final or not _listens(known)):
                continue
            if known is None and full and oldest is not None and deployment.created_at < oldest:
                continue
            statuses = await self.github.list_statuses(repo, deployment.id)
            remote = list(reversed(statuses))  # oldest first
            if known is None:
                if not remote and not dispatched:  # a claim being made (or withdrawn)
                    settled = False
                    continue
                if remote and remote[0].state == "inactive":
                    continue  # a claim withdrawn before it did anything: not a deploy
                made = import_deploy(
                    repo,
                    environment,
                    deployment.id,
                    deployment.sha,
                    deployment.payload,
                    deployment.creator,
                    deployment.created_at,
                )
                if made is None:
                    continue
                deploy, created = made
                stub = DeployRecord.build(deploy, [])
                result = await self.history.apply(
                    [(deploy, [created, *import_events(stub, remote)])], []
                )
                for record in result.touched:
                    self.publish(DeployChanged(record))
                    settled = settled and record.status.is_final
                continue
            settled = False  # unfinished here: its statuses are followed every round
            events = import_events(known, remote)
            if events:
                stored = await self.history.append_events(events)
                if any(e.seq > known.events[-1].seq for e in stored if e is not None):
                    self.publish(DeployChanged(await self.history.record(known.id)))
        return settled

    async def _link_actions_deployment(self, repo: str, deployment: Deployment) -> bool:
        """A deployment GitHub Actions made itself (a job with `environment:`) belongs to its
        run's record: a NOTE there names it, instead of a second record. False: try again
        next round."""
        if deployment.id in self._actions_linked:
            return True
        if (self.now() - deployment.created_at).total_seconds() > self.stale_after:
            self._actions_linked.add(deployment.id)  # its run is long recorded, or never will be
        statuses = await self.github.list_statuses(repo, deployment.id, max_pages=1)
        run_id = next((r for s in statuses if (r := run_id_of(s.log_url)) is not None), None)
        if run_id is None:
            return deployment.id in self._actions_linked  # no status names its run yet
        record = await self.history.find_by_run(repo, run_id)
        if record is None:
            return deployment.id in self._actions_linked  # tracking records the run first
        self._actions_linked.add(deployment.id)
        note = NewEvent(
            record.id,
            EventKind.NOTE,
            deployment.created_at,
            detail=f"GitHub Actions recorded this run as deployment #{deployment.id}.",
            data={"linked_deployment": deployment.id},
            event_id=deployment_link_id(record.id, deployment.id),
        )
        stored = await self.history.append_events([note])
        if stored and stored[0].seq > record.events[-1].seq:
            self.publish(DeployChanged(await self.history.record(record.id)))
        return True

    # ---------------------------------------------------------------- degrade

    def _go_local(self, repo: str, environment: str, error: AuthError | NotFound) -> bool:
        """A 403 (or a 404: fine-grained tokens hide what they may not write) on a write means
        this token may not write deployments: local-only from now on, said once. A 401 (a bad
        token) is not that: the outbox keeps its writes."""
        if error.status == 401:
            return False
        if self.local_only is None:
            self.local_only = f"{LOCAL_ONLY} ({error})"
            self.announce(repo, environment)
            if self._remembered is not None:
                self._remembered.remember(self.local_only, self.now())
        return True

    def announce(self, repo: str, environment: str) -> None:
        """Say local-only where the header shows a source's problems (once per environment)."""
        if self.local_only is not None:
            self.publish(SourceHealth(TEAM_KEY, repo, environment, Health.AUTH, LOCAL_ONLY))


class _Remembered:
    """Local-only is remembered for this token (by fingerprint) in the data folder for an hour,
    so the next process (every CLI command is one) does not try a write it knows will fail."""

    def __init__(self, path: Path, token: str) -> None:
        self.path = path
        self.token = token

    def local_only(self, now: datetime) -> str | None:
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
            if state["token"] != self.token:
                return None
            if (now - from_iso(state["at"])).total_seconds() > REMEMBER_S:
                return None
            return str(state["message"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def remember(self, message: str, now: datetime) -> None:
        state = {"token": self.token, "at": to_iso(now), "message": message}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(state), encoding="utf-8")
        except OSError as error:  # then the next process finds out again, with one write
            log.info("could not remember local-only mode in %s: %s", self.path, error)


def _listens(record: DeployRecord) -> bool:
    """Whether other machines may still add to this deploy (cancel requests, notes, the end)."""
    return is_imported(record) or mirrors(record)
