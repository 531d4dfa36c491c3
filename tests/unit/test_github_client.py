"""The client's handling of HTTP answers, through httpx.MockTransport (no sockets).

These check what the client does with each answer (headers it sends, 304s, redirects, retries,
lost dispatches, rate limits); the real-socket tests against the sandbox are in
tests/integration/test_github_client.py.
"""

from __future__ import annotations

import gc
import logging
import tracemalloc
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from tests.unit.test_github_results import JOB, RUN, SHA
from vmkit_tui.domain.secret import Secret
from vmkit_tui.sources.github import (
    AuthError,
    BadResponse,
    CancelOutcome,
    GitHubClient,
    ImageCheck,
    ImageState,
    NotFound,
    RateLimited,
    Unavailable,
)

TOKEN = "ghp_" + "S3cr3tT0k3nV4lu3" * 2 + "abcd"
API = "https://api.github.com"
Handler = Callable[[httpx.Request], httpx.Response]


class FakeTime:
    """Clock and sleep: sleeping advances the clock instantly and is recorded."""

    def __init__(self) -> None:
        self.now = 1_780_000_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeGitHub:
    """Answers from a queue per (method, path); records every request."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Handler]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, path: str, *handlers: Handler) -> None:
        self.routes.setdefault((method, path), []).extend(handlers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.routes.get((request.method, request.url.path))
        if not queue:
            return httpx.Response(404, json={"message": "Not Found"})
        handler = queue.pop(0) if len(queue) > 1 else queue[0]  # the last one repeats
        return handler(request)

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]


def reply(status: int, body: Any = None, **headers: str) -> Handler:
    content = b"" if body is None else orjson.dumps(body)
    return lambda request: httpx.Response(status, content=content, headers=headers)


def raise_(error: type[Exception]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request)

    return handler


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


@pytest.fixture
def github() -> FakeGitHub:
    return FakeGitHub()


def faked_client(github: FakeGitHub, time_: FakeTime, **options: Any) -> GitHubClient:
    """A client of the fake GitHub on fake time; `options` are further GitHubClient settings."""
    return GitHubClient(
        API,
        Secret(TOKEN),
        clock=time_.clock,
        sleep=time_.sleep,
        transport=httpx.MockTransport(github),
        **options,
    )


@pytest.fixture
async def client(github: FakeGitHub, time_: FakeTime):
    async with faked_client(github, time_, dispatch_lookup_timeout=6.0) as c:
        yield c


RUNS = "/repos/acme/web/actions/workflows/deploy.yml/runs"


def run(run_id: int, **fields: Any) -> dict[str, Any]:
    return {**RUN, "id": run_id, **fields}


async def test_headers_auth_and_etag_304(client: GitHubClient, github: FakeGitHub) -> None:
    github.on("GET", RUNS, reply(200, {"total_count": 1, "workflow_runs": [run(1)]}, etag='W/"a1"'))
    github.on("GET", RUNS, reply(304, etag='"a1"'))
    first = await client.list_runs("acme/web", "deploy.yml", branch="main")
    second = await client.list_runs("acme/web", "deploy.yml", branch="main")
    assert first == second and first[0].id == 1
    sent = github.sent("GET", RUNS)
    assert sent[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert sent[0].headers["accept"] == "application/vnd.github+json"
    assert sent[0].headers["x-github-api-version"] == "2022-11-28"
    assert sent[0].headers["user-agent"].startswith("vmkit-tui/")
    assert "if-none-match" not in sent[0].headers
    assert sent[1].headers["if-none-match"] == 'W/"a1"'  # byte for byte
    assert sent[0].url.params["branch"] == "main" and sent[0].url.params["per_page"] == "100"
    assert (client.stats.sent, client.stats.not_modified, client.stats.counted) == (2, 1, 1)


async def test_a_cached_answer_is_kept_as_the_bytes_it_came_in(
    client: GitHubClient, github: FakeGitHub
) -> None:
    """The ETag cache holds hundreds of answers for hours: each costs about its size on the
    wire, not its parsed objects (several times that); a 304 answers from those bytes."""
    page = {"total_count": 100, "workflow_runs": [run(n) for n in range(1, 101)]}
    github.on("GET", RUNS, reply(200, page, etag='W/"a1"'))
    github.on("GET", RUNS, reply(304, etag='"a1"'))
    size = len(orjson.dumps(page))
    gc.collect()
    tracemalloc.start()
    try:
        first = await client.list_runs("acme/web", "deploy.yml", branch="main")
        ids = [r.id for r in first]
        del first
        gc.collect()
        kept, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept < 1.5 * size, (kept, size)
    again = await client.list_runs("acme/web", "deploy.yml", branch="main")
    assert [r.id for r in again] == ids == list(range(1, 101))
    assert client.stats.not_modified == 1


async def test_pagination_follows_repositories_links_verbatim(
    client: GitHubClient, github: FakeGitHub
) -> None:
    next_url = f"{API}/repositories/42/actions/workflows/deploy.yml/runs?per_page=2&page=2"
    github.on(
        "GET",
        RUNS,
        reply(
            200,
            {"total_count": 3, "workflow_runs": [run(3), run(2)]},
            link=f'<{next_url}>; rel="next"',
        ),
    )
    github.on(
        "GET",
        "/repositories/42/actions/workflows/deploy.yml/runs",
        reply(200, {"total_count": 3, "workflow_runs": [run(1)]}),
    )
    runs = await client.list_runs("acme/web", "deploy.yml", per_page=2)
    assert [r.id for r in runs] == [3, 2, 1]
    assert str(github.requests[1].url) == next_url
    assert github.requests[1].headers["authorization"] == f"Bearer {TOKEN}"


async def test_pagination_link_to_another_host_is_refused(
    client: GitHubClient, github: FakeGitHub
) -> None:
    github.on(
        "GET",
        RUNS,
        reply(200, {"workflow_runs": [run(1)]}, link='<https://evil.example/x?page=2>; rel="next"'),
    )
    with pytest.raises(BadResponse, match="leaves the API host"):
        await client.list_runs("acme/web", "deploy.yml")
    assert len(github.requests) == 1


async def test_job_log_redirect_without_authorization(
    client: GitHubClient, github: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    blob = "https://results.blob.core.windows.net/actions-results/x/job-logs.txt?se=2026&sig=SIGNED"
    github.on("GET", "/repos/acme/web/actions/jobs/7/logs", reply(302, location=blob))
    github.on(
        "GET",
        "/actions-results/x/job-logs.txt",
        lambda request: httpx.Response(
            200, content="\ufeff2026-05-01T10:00:00.1234567Z hello\n".encode()
        ),
    )
    with caplog.at_level(logging.DEBUG):
        log = await client.job_log("acme/web", 7)
    assert log is not None and log.lines[0].text == "hello"
    blob_request = github.requests[1]
    assert blob_request.url.host == "results.blob.core.windows.net"
    assert "authorization" not in blob_request.headers
    assert "SIGNED" not in caplog.text and TOKEN not in caplog.text


async def test_job_log_404_means_not_yet(client: GitHubClient, github: FakeGitHub) -> None:
    assert await client.job_log("acme/web", 8) is None


async def test_cancel_202_and_409(client: GitHubClient, github: FakeGitHub) -> None:
    path = "/repos/acme/web/actions/runs/5/cancel"
    github.on("POST", path, reply(202, {}))
    github.on(
        "POST", path, reply(409, {"message": "Cannot cancel a workflow run that is completed."})
    )
    assert await client.cancel("acme/web", 5) is CancelOutcome.REQUESTED
    assert await client.cancel("acme/web", 5) is CancelOutcome.ALREADY_FINISHED


DISPATCH = "/repos/acme/web/actions/workflows/deploy.yml/dispatches"
INPUTS = {"sha": SHA, "environment": "production"}
REQ = "req-7f3a9c2e"


async def test_dispatch_with_run_details(client: GitHubClient, github: FakeGitHub) -> None:
    github.on(
        "POST",
        DISPATCH,
        reply(
            200,
            {
                "workflow_run_id": 99,
                "run_url": f"{API}/repos/acme/web/actions/runs/99",
                "html_url": "https://github.com/acme/web/actions/runs/99",
            },
        ),
    )
    result = await client.dispatch("acme/web", "deploy.yml", "main", INPUTS, REQ)
    assert result.run_id == 99
    body = orjson.loads(github.requests[0].content)
    assert body == {
        "ref": "main",
        "inputs": {**INPUTS, "request_id": REQ},
        "return_run_details": True,
    }


async def test_dispatch_204_finds_the_run_by_request_id(
    client: GitHubClient, github: FakeGitHub, time_: FakeTime
) -> None:
    github.on("POST", DISPATCH, reply(204))
    github.on("GET", RUNS, reply(200, {"workflow_runs": [run(1, display_title="other")]}))
    github.on("GET", RUNS, reply(200, {"workflow_runs": [run(2, display_title=f"deploy [{REQ}]")]}))
    result = await client.dispatch("acme/web", "deploy.yml", "main", INPUTS, REQ)
    assert result.run_id == 2 and result.run_url == f"{API}/repos/acme/web/actions/runs/2"
    lookup = github.sent("GET", RUNS)[0]
    assert (
        lookup.url.params["event"] == "workflow_dispatch" and lookup.url.params["branch"] == "main"
    )
    assert time_.sleeps == [2.0]


async def test_lost_dispatch_is_not_resent_when_the_run_exists(
    client: GitHubClient, github: FakeGitHub
) -> None:
    github.on("POST", DISPATCH, raise_(httpx.ReadTimeout))
    github.on("GET", RUNS, reply(200, {"workflow_runs": [run(3, display_title=f"deploy [{REQ}]")]}))
    result = await client.dispatch("acme/web", "deploy.yml", "main", INPUTS, REQ)
    assert result.run_id == 3
    assert len(github.sent("POST", DISPATCH)) == 1


async def test_lost_dispatch_is_resent_once_no_run_exists(
    client: GitHubClient, github: FakeGitHub
) -> None:
    github.on("POST", DISPATCH, raise_(httpx.RemoteProtocolError))
    github.on("POST", DISPATCH, reply(200, {"workflow_run_id": 4, "run_url": "u", "html_url": "h"}))
    github.on("GET", RUNS, reply(200, {"workflow_runs": []}))
    result = await client.dispatch("acme/web", "deploy.yml", "main", INPUTS, REQ)
    assert result.run_id == 4
    assert len(github.sent("POST", DISPATCH)) == 2
    assert len(github.sent("GET", RUNS)) >= 2  # looked for it for the whole lookup window


async def test_dispatch_retries_without_run_details_on_old_ghes(
    client: GitHubClient, github: FakeGitHub
) -> None:
    github.on(
        "POST", DISPATCH, reply(422, {"message": '"return_run_details" is not a permitted key.'})
    )
    github.on("POST", DISPATCH, reply(204))
    github.on("GET", RUNS, reply(200, {"workflow_runs": [run(5, display_title=REQ)]}))
    result = await client.dispatch("acme/web", "deploy.yml", "main", INPUTS, REQ)
    assert result.run_id == 5
    second = orjson.loads(github.sent("POST", DISPATCH)[1].content)
    assert "return_run_details" not in second


async def test_short_rate_limit_is_waited_out_and_observable(
    github: FakeGitHub, time_: FakeTime
) -> None:
    seen: list[RateLimited] = []
    github.on(
        "GET",
        "/repos/acme/web/actions/runs/1",
        reply(429, {"message": "slow down"}, **{"retry-after": "30"}),
    )
    github.on("GET", "/repos/acme/web/actions/runs/1", reply(200, run(1)))
    async with faked_client(github, time_, on_rate_limit=seen.append) as client:
        assert (await client.get_run("acme/web", 1)).id == 1
    assert time_.sleeps == [30.0]
    assert len(seen) == 1 and seen[0].wait == 30 and seen[0].secondary


async def test_long_rate_limit_raises_and_blocks_further_requests(
    client: GitHubClient, github: FakeGitHub, time_: FakeTime
) -> None:
    reset = str(int(time_.now) + 1800)
    github.on(
        "GET",
        "/repos/acme/web/actions/runs/1",
        reply(
            403,
            {"message": "API rate limit exceeded for user ID 1."},
            **{"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
        ),
    )
    with pytest.raises(RateLimited) as caught:
        await client.get_run("acme/web", 1)
    assert 1800 <= caught.value.wait <= 1801 and not caught.value.secondary
    assert client.rate_limited_until is not None
    with pytest.raises(RateLimited):
        await client.get_run("acme/web", 2)
    assert len(github.requests) == 1  # nothing sent while limited
    time_.now += 1802
    assert client.rate_limited_until is None


async def test_5xx_and_dropped_connections_are_retried_with_backoff(
    client: GitHubClient, github: FakeGitHub, time_: FakeTime
) -> None:
    path = "/repos/acme/web/actions/runs/1/jobs"
    github.on("GET", path, reply(502), raise_(httpx.RemoteProtocolError), raise_(httpx.ReadTimeout))
    github.on("GET", path, reply(200, {"total_count": 1, "jobs": [JOB]}))
    jobs = await client.list_jobs("acme/web", 1)
    assert jobs[0].name == "test (Python 3.7)"
    assert len(time_.sleeps) == 3 and time_.sleeps[2] > time_.sleeps[0]


async def test_retries_are_bounded(client: GitHubClient, github: FakeGitHub) -> None:
    github.on("GET", "/repos/acme/web/actions/runs/1", reply(503))
    with pytest.raises(Unavailable, match=r"GET /repos/acme/web/actions/runs/1: 503 after 4"):
        await client.get_run("acme/web", 1)
    assert len(github.requests) == 4


async def test_malformed_json_names_the_endpoint(client: GitHubClient, github: FakeGitHub) -> None:
    github.on(
        "GET", "/repos/acme/web/actions/runs/1", lambda r: httpx.Response(200, content=b'{"id": 1,')
    )
    with pytest.raises(BadResponse) as caught:
        await client.get_run("acme/web", 1)
    assert "GET /repos/acme/web/actions/runs/1" in str(caught.value)
    assert "malformed JSON" in str(caught.value) and len(str(caught.value)) < 300


async def test_401_is_a_clear_auth_error_without_the_token(
    client: GitHubClient, github: FakeGitHub
) -> None:
    github.on(
        "GET", "/repos/acme/web/actions/runs/1", reply(401, {"message": f"Bad credentials {TOKEN}"})
    )
    with pytest.raises(AuthError) as caught:
        await client.get_run("acme/web", 1)
    assert "invalid or expired" in str(caught.value) and TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value) and TOKEN not in repr(client.__dict__)


async def test_image_check_present_missing_and_cannot_check(
    client: GitHubClient, github: FakeGitHub
) -> None:
    versions = "/orgs/acme/packages/container/web%2Fapi/versions"
    user_versions = "/users/acme/packages/container/web%2Fapi/versions"
    tagged = [
        {"id": 2, "metadata": {"container": {"tags": [SHA, "latest"]}}},
        {"id": 1, "metadata": {"container": {"tags": []}}},
    ]
    github.routes[("GET", "/orgs/acme/packages/container/web/api/versions")] = [reply(404)]
    github.routes[("GET", "/users/acme/packages/container/web/api/versions")] = [reply(200, tagged)]
    check = ImageCheck.of(await client.image_tags("ghcr.io/acme/web/api"), SHA)
    assert check.state is ImageState.PRESENT
    raw_paths = [r.url.raw_path.decode() for r in github.requests]
    assert raw_paths == [versions + "?per_page=100", user_versions + "?per_page=100"]
    other = "0" * 40
    assert ImageCheck.of(await client.image_tags("ghcr.io/acme/web/api"), other).missing
    github.routes[("GET", "/users/acme/packages/container/web/api/versions")] = [
        reply(
            403,
            {"message": "Resource not accessible by personal access token"},
            **{"x-ratelimit-remaining": "4000"},
        )
    ]
    denied = ImageCheck.of(await client.image_tags("ghcr.io/acme/web/api"), SHA)
    assert denied.state is ImageState.CANNOT_CHECK and "read:packages" in denied.reason


async def test_image_check_404_everywhere_is_cannot_check(client: GitHubClient) -> None:
    check = ImageCheck.of(await client.image_tags("ghcr.io/acme/web"), SHA)
    assert check.state is ImageState.CANNOT_CHECK and "read:packages" in check.reason
    not_ghcr = ImageCheck.of(await client.image_tags("docker.io/acme/web"), SHA)
    assert not_ghcr.state is ImageState.CANNOT_CHECK


async def test_get_commit_absent_is_none(client: GitHubClient, github: FakeGitHub) -> None:
    github.on(
        "GET",
        f"/repos/acme/web/commits/{SHA}",
        reply(422, {"message": f"No commit found for SHA: {SHA}"}),
    )
    assert await client.get_commit("acme/web", SHA) is None
    with pytest.raises(NotFound):
        await client.get_run("acme/web", 9)


def test_plain_http_is_refused_except_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        GitHubClient("http://api.github.com", Secret(TOKEN))
    with pytest.raises(TypeError):
        GitHubClient(API, TOKEN)  # type: ignore[arg-type]


async def test_oversized_log_keeps_the_tail(github: FakeGitHub, time_: FakeTime) -> None:
    lines = [f"2026-05-01T10:00:{i:02d}.0000000Z line {i}" for i in range(50)]
    github.on(
        "GET", "/repos/acme/web/actions/jobs/7/logs", reply(302, location="https://blob.example/l")
    )
    github.on("GET", "/l", lambda request: httpx.Response(200, content="\n".join(lines).encode()))
    async with faked_client(github, time_, max_log_bytes=200) as client:
        log = await client.job_log("acme/web", 7)
    assert log is not None and log.truncated
    assert log.lines[-1].text == "line 49" and log.lines[0].timestamp is not None
    assert len(log.lines) < 50


async def test_consecutive_unexplained_limits_back_off_harder(
    client: GitHubClient, github: FakeGitHub, time_: FakeTime
) -> None:
    path = "/repos/acme/web/actions/runs/1"
    limited = reply(403, {"message": "You have exceeded a secondary rate limit."})
    github.on("GET", path, limited, limited, reply(200, run(1)))
    with pytest.raises(RateLimited) as caught:
        await client.get_run("acme/web", 1)
    assert time_.sleeps == [60.0] and caught.value.wait == 120 and caught.value.secondary
    time_.now += 120
    assert (await client.get_run("acme/web", 1)).id == 1


async def test_image_check_stops_at_the_page_limit_without_claiming_missing(
    client: GitHubClient, github: FakeGitHub
) -> None:
    page = [{"id": 1, "metadata": {"container": {"tags": ["latest"]}}}]
    more = f'<{API}/orgs/acme/packages/container/web/versions?page=2>; rel="next"'
    github.on("GET", "/orgs/acme/packages/container/web/versions", reply(200, page, link=more))
    check = ImageCheck.of(await client.image_tags("ghcr.io/acme/web", max_pages=1), SHA)
    assert check.state is ImageState.CANNOT_CHECK and "newest versions" in check.reason
    assert len(github.requests) == 1


async def test_an_oversized_json_answer_is_refused_once_and_never_retried(
    client: GitHubClient, github: FakeGitHub
) -> None:
    from vmkit_tui.sources.github import TooLarge

    big = b"[" + b'{"a":1},' * (1_100_000) + b'{"a":1}]'  # about 8.8 MB of valid JSON
    github.on("GET", RUNS, lambda request: httpx.Response(200, content=big))
    with pytest.raises(TooLarge, match="over 8 MB"):
        await client.list_runs("acme/web", "deploy.yml")
    assert len(github.sent("GET", RUNS)) == 1


async def test_a_log_read_stops_at_its_cap_and_says_so(
    github: FakeGitHub, time_: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vmkit_tui.sources.github import session

    monkeypatch.setattr(session, "MAX_LOG_READ", 4096)
    line = b"2026-05-01T10:00:00.0000000Z more\n"
    github.on(
        "GET", "/repos/acme/web/actions/jobs/7/logs", reply(302, location="https://b.example/l")
    )
    github.on("GET", "/l", lambda request: httpx.Response(200, content=line * 1000))
    async with faked_client(github, time_, max_log_bytes=1024) as client:
        log = await client.job_log("acme/web", 7)
    assert log is not None and log.truncated
    assert log.lines[-1].text.endswith("log truncated at 0 MB: the rest was not read")
    assert len(github.sent("GET", "/l")) == 1


async def test_an_exception_group_from_the_connection_is_named_by_its_cause(
    time_: FakeTime,
) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise ExceptionGroup("unhandled errors in a TaskGroup", [OverflowError("port 0-65535")])

    client = GitHubClient(
        API,
        Secret(TOKEN),
        clock=time_.clock,
        sleep=time_.sleep,
        transport=httpx.MockTransport(broken),
    )
    async with client:
        with pytest.raises(Unavailable) as caught:
            await client.get_run("acme/web", 1)
    assert "cannot connect: OverflowError: port 0-65535" in str(caught.value)
    assert "TaskGroup" not in str(caught.value)


@pytest.mark.parametrize("repo", ["acme/..", "acme/.", "acme/a/b", "acme/web\n"])
async def test_repo_names_that_would_leave_their_url_are_refused(
    client: GitHubClient, github: FakeGitHub, repo: str
) -> None:
    with pytest.raises(ValueError):
        await client.list_runs(repo, "deploy.yml")
    with pytest.raises(ValueError):
        await client.compare("acme/web", "main/./x", "main")
    assert github.requests == []
