"""Realistic deploy logs for the joblog and diagnose tests.

Shapes follow the real thing: GitHub job logs (BOM, 7-digit timestamps, `##[group]Run …` step
headers, `##[error]Process completed…`, post-job cleanup) and Kamal 2 / kamal-proxy output
(strings from Kamal's source and real issues).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

SHA = "9f2c1ab4e0d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0"
OLD_SHA = "3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f"
IMAGE = f"ghcr.io/acme/web:{SHA}"


def github_log(*sections: list[str], start: datetime | None = None) -> str:
    """Join sections into a job log: BOM, one timestamp per line 0.13 s apart."""
    moment = start or datetime(2026, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    out = []
    for line in (line for section in sections for line in section):
        out.append(f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}0Z {line}")
        moment += timedelta(milliseconds=130)
    return "\ufeff" + "\n".join(out) + "\n"


SET_UP = [
    "Current runner version: '2.323.0'",
    "##[group]Operating System",
    "Ubuntu",
    "24.04.2",
    "LTS",
    "##[endgroup]",
    "##[group]GITHUB_TOKEN Permissions",
    "Contents: read",
    "Metadata: read",
    "##[endgroup]",
    "Prepare workflow directory",
    "Complete job name: deploy",
]

CHECKOUT = [
    "##[group]Run actions/checkout@v4",
    "with:",
    "  repository: acme/web",
    "##[endgroup]",
    "Syncing repository: acme/web",
    f"[command]/usr/bin/git checkout --progress --force {SHA}",
    f"HEAD is now at {SHA[:7]} Fix the cart total rounding",
]

BUILD_OK = [
    f"##[group]Run pack build {IMAGE} --builder heroku/builder:24 --publish",
    f"pack build {IMAGE} --builder heroku/builder:24 --publish",
    "shell: /usr/bin/bash -e {0}",
    "##[endgroup]",
    "24: Pulling from heroku/builder",
    "Status: Image is up to date for heroku/builder:24",
    "===> ANALYZING",
    f'Image with name "{IMAGE}" not found',
    "===> DETECTING",
    "3 of 4 buildpacks participating",
    "heroku/ruby      7.0.2",
    "heroku/procfile  4.0.0",
    "===> BUILDING",
    "[Installing gems]",
    "- Running `bundle install`",
    "===> EXPORTING",
    "Adding label 'service'",
    f"*** Images (sha256:6413c62920ab): {IMAGE}",
]

DEPLOY_OK = [
    f"##[group]Run kamal deploy --skip-push --version {SHA} -d production",
    f"kamal deploy --skip-push --version {SHA} -d production",
    "shell: /usr/bin/bash -e {0}",
    "##[endgroup]",
    "Pull app image...",
    "  INFO [182f36de] Running docker login ghcr.io -u [REDACTED] -p [REDACTED] on 203.0.113.10",
    "  INFO [182f36de] Finished in 2.639 seconds with exit status 0 (successful).",
    f"  INFO [77c1d9a0] Running docker pull {IMAGE} on 203.0.113.10",
    "  INFO [77c1d9a0] Finished in 8.412 seconds with exit status 0 (successful).",
    f"  INFO [0f3e9b12] Running docker inspect -f '{{{{ .Config.Labels.service }}}}' {IMAGE}"
    f" | grep -x web || (echo \"Image {IMAGE} is missing the 'service' label\" && exit 1)"
    " on 203.0.113.10",
    "  INFO [0f3e9b12] Finished in 0.101 seconds with exit status 0 (successful).",
    "Acquiring the deploy lock...",
    "Ensure kamal-proxy is running...",
    "  INFO [c0ffee01] Running docker network create kamal on 203.0.113.10",
    "  INFO [c0ffee01] Finished in 0.143 seconds with exit status 1 (failed).",
    f"Start container with version {SHA} (or reboot if already running)...",
    f"  INFO [55ee66ff] Running docker run --detach --restart unless-stopped --name "
    f"web-web-production-{SHA} --network kamal {IMAGE} on 203.0.113.10",
    "  INFO [99cc00dd] Running docker exec kamal-proxy kamal-proxy deploy web-web-production "
    '--target="ad9e1df96129:3000" --deploy-timeout="30s" on 203.0.113.10',
    "  INFO [99cc00dd] Finished in 12.874 seconds with exit status 0 (successful).",
    "  INFO First web container is healthy on 203.0.113.10, booting any other roles",
    "Prune old containers and images...",
    "Releasing the deploy lock...",
    "  Finished all in 38.6 seconds",
]

CLEANUP = [
    "Post job cleanup.",
    "##[group]Run actions/checkout@v4",
    "##[endgroup]",
    "[command]/usr/bin/git version",
    "git version 2.49.0",
    "Cleaning up orphan processes",
]

FAILED_STEP = ["##[error]Process completed with exit code 1."]

SUCCESS_LOG = github_log(SET_UP, CHECKOUT, BUILD_OK, DEPLOY_OK, CLEANUP)

BUILDPACK_DETECT_FAILED = github_log(
    SET_UP,
    CHECKOUT,
    BUILD_OK[:8],
    [
        "===> DETECTING",
        "======== Output: heroku/procfile@4.0.0 ========",
        "Procfile not found",
        "======== Results ========",
        "fail: heroku/procfile@4.0.0",
        "ERROR: No buildpack groups passed detection.",
        "ERROR: Please check that you are running against the correct path.",
        "ERROR: failed to detect: no buildpacks participating",
        "ERROR: failed to build: executing lifecycle: failed with status code: 20",
    ],
    FAILED_STEP,
    CLEANUP,
)

GHCR_DENIED = github_log(
    SET_UP,
    CHECKOUT,
    BUILD_OK[:14],
    [
        "===> EXPORTING",
        "ERROR: failed to export: failed to write image to the following tags: "
        f"[{IMAGE}: PUT https://ghcr.io/v2/acme/web/manifests/{SHA}: unexpected status "
        "403 Forbidden]",
        "denied: permission_denied: write_package",
    ],
    FAILED_STEP,
    CLEANUP,
)

HEALTH_TIMEOUT = github_log(
    SET_UP,
    DEPLOY_OK[:18],
    [
        "  INFO [99cc00dd] Running docker exec kamal-proxy kamal-proxy deploy web-web-production "
        '--target="ad9e1df96129:3000" --deploy-timeout="30s" on 203.0.113.10',
        " ERROR Failed to boot web on 203.0.113.10",
        "  INFO First web container is unhealthy on 203.0.113.10, not booting any other roles",
        "  INFO [395476f8] Running docker container ls --all --filter "
        f"'name=^web-web-production-{SHA}$' --quiet | xargs docker logs --timestamps 2>&1 "
        "on 203.0.113.10",
        " ERROR 2026-05-01T10:00:01.123456789Z Puma starting in single mode...",
        "2026-05-01T10:00:01.923456789Z * Listening on http://127.0.0.1:3000",
        " ERROR null",
        "Releasing the deploy lock...",
        "  Finished all in 45.2 seconds",
        "  ERROR (SSHKit::Command::Failed): Exception while executing on host 203.0.113.10: "
        "docker exit status: 1",
        "docker stdout: Nothing written",
        "docker stderr: Error: target failed to become healthy within configured timeout (30s)",
    ],
    FAILED_STEP,
    CLEANUP,
)

SSH_TIMEOUT_KAMAL = [
    "Pull app image...",
    "  INFO [da4b2410] Running docker login ghcr.io -u [REDACTED] -p [REDACTED] on 172.31.23.194",
    "  Finished all in 30.2 seconds",
    "  ERROR (Net::SSH::ConnectionTimeout): Exception while executing on host 172.31.23.194: "
    "Net::SSH::ConnectionTimeout",
]

SSH_REFUSED_KAMAL = [
    "Pull app image...",
    "  ERROR (Errno::ECONNREFUSED): Exception while executing on host 203.0.113.10: "
    "Connection refused - connect(2) for 203.0.113.10:22",
]

SSH_AUTH_KAMAL = [
    "  INFO [da4b2410] Running docker ps --filter label=service=web on 49.13.0.7",
    "  Finished all in 0.9 seconds",
    "  ERROR (Net::SSH::AuthenticationFailed): Exception while executing on host 49.13.0.7: "
    "Authentication failed for user root@49.13.0.7",
]

LOCK_HELD_KAMAL = [
    "  INFO [a1b2c3d4] Running /usr/bin/env mkdir -p .kamal on 203.0.113.10",
    "Acquiring the deploy lock...",
    "Deploy lock already in place!",
    "Locked by: Jane Doe at 2026-05-01T10:00:00Z",
    f"Version: {OLD_SHA}",
    "Message: Automatic deploy lock",
    "  Finished all in 1.9 seconds",
    "  ERROR (Kamal::Cli::LockError): Deploy lock found. Run 'kamal lock help' for more "
    "information",
]

ROLLBACK_MISSING_KAMAL = [
    "Acquiring the deploy lock...",
    f"  INFO [37d62513] Running docker container ls --all --filter name=^web-prod-{OLD_SHA}$ "
    "--quiet on prodserver",
    "  INFO [37d62513] Finished in 0.111 seconds with exit status 0 (successful).",
    f"Error looking for container version {OLD_SHA}: Exception while executing on host "
    "prodserver: Container not found",
    f"The app version '{OLD_SHA}' is not available as a container (use 'kamal app containers' "
    "for available versions)",
    "Releasing the deploy lock...",
    "  Finished all in 1.4 seconds",
]

SERVICE_LABEL_KAMAL = [
    "Pull app image...",
    f"  INFO [77c1d9a0] Running docker pull {IMAGE} on 203.0.113.10",
    "  INFO [77c1d9a0] Finished in 8.412 seconds with exit status 0 (successful).",
    f"  INFO [0f3e9b12] Running docker inspect -f '{{{{ .Config.Labels.service }}}}' {IMAGE}"
    f" | grep -x web || (echo \"Image {IMAGE} is missing the 'service' label\" && exit 1)"
    " on 203.0.113.10",
    "  Finished all in 9.3 seconds",
    "  ERROR (SSHKit::Command::Failed): Exception while executing on host 203.0.113.10: "
    "docker exit status: 1",
    f"docker stdout: Image {IMAGE} is missing the 'service' label",
    "docker stderr: Nothing written",
]

MANIFEST_UNKNOWN_KAMAL = [
    "Pull app image...",
    f"  INFO [77c1d9a0] Running docker pull ghcr.io/acme/web:{OLD_SHA} on 203.0.113.10",
    "  Finished all in 1.2 seconds",
    "  ERROR (SSHKit::Command::Failed): Exception while executing on host 203.0.113.10: "
    "docker exit status: 1",
    "docker stdout: Nothing written",
    f"docker stderr: Error response from daemon: manifest for ghcr.io/acme/web:{OLD_SHA} not "
    "found: manifest unknown: manifest unknown",
]

KAMAL_PROXY_TIMEOUT = [
    '{"time":"2026-05-01T10:00:00.100Z","level":"INFO","msg":"Deploying",'
    '"service":"web-web-production","targets":["ad9e1df96129:3000"]}',
    '{"time":"2026-05-01T10:00:00.200Z","level":"INFO","msg":"Healthcheck failed",'
    '"url":"http://ad9e1df96129:3000/up","error":"Get \\"http://ad9e1df96129:3000/up\\": '
    'dial tcp 172.18.0.7:3000: connect: connection refused"}',
    '{"time":"2026-05-01T10:00:30.100Z","level":"ERROR","msg":"Target failed to become healthy",'
    '"target":"ad9e1df96129:3000","error":"target failed to become healthy within configured '
    'timeout (30s)"}',
]

KAMAL_PROXY_OK = [
    KAMAL_PROXY_TIMEOUT[0],
    KAMAL_PROXY_TIMEOUT[1],  # health checks fail while the app boots: normal
    '{"time":"2026-05-01T10:00:03.100Z","level":"INFO","msg":"Target health updated",'
    '"target":"ad9e1df96129:3000","state":"healthy","was":"adding"}',
    '{"time":"2026-05-01T10:00:04.000Z","level":"INFO","msg":"Deployed",'
    '"service":"web-web-production"}',
]

# Heroku's classic buildpacks (e.g. via herokuish) word detection failures differently from CNB.
CLASSIC_BUILDPACK_FAILED = [
    "-----> Fetching buildpack https://github.com/heroku/heroku-buildpack-ruby",
    "-----> App not compatible with buildpack: https://github.com/heroku/heroku-buildpack-ruby",
    "       More info: https://devcenter.heroku.com/articles/buildpacks#detection-failure",
]
CLASSIC_BUILDPACK_UNSUPPORTED = ["Application not supported by 'heroku/nodejs' buildpack"]


def push_step(*output: str) -> str:
    """A failed `docker push` step: the registry is named in the script and the header only."""
    return github_log(
        SET_UP,
        [
            f"##[group]Run docker push {IMAGE}",
            f"docker push {IMAGE}",
            "shell: /usr/bin/bash -e {0}",
            "##[endgroup]",
            *output,
        ],
        FAILED_STEP,
        CLEANUP,
    )


GHCR_401 = push_step(
    "The push refers to repository [registry.example/acme/web]",
    "7c2d9a1e55f0: Preparing",
    "unauthorized: unauthenticated: User cannot be authenticated with the token provided.",
)
GHCR_403_PAREN = push_step(
    "9e8d7c6b5a41: Preparing",
    "ERROR: failed to push: unexpected status: 403 (Forbidden)",
)
GHCR_403_ORG = push_step(
    "9e8d7c6b5a41: Preparing",
    "denied: installation not allowed to Create organization package",
)
DOCKERHUB_403 = github_log(
    ["##[group]Run docker push acme/web:1.2", "docker push acme/web:1.2", "##[endgroup]"],
    ["ERROR: failed to push: unexpected status: 403 (Forbidden)"],
    FAILED_STEP,
)

# Kamal 1.x checked health itself, with a throwaway `healthcheck-…` container.
KAMAL1_HEALTHCHECK = [
    "  INFO [5a6b7c8d] Running docker run --detach --name healthcheck-web-3c4d5e6 … on 198.51.100.4",
    "  INFO container not ready (starting), retrying in 1s (attempt 1/7)...",
    "  INFO container not ready (unhealthy), retrying in 2s (attempt 2/7)...",
    "  Finished all in 41.0 seconds",
    "  ERROR (Kamal::Cli::Healthcheck::Error): Exception while executing on host 198.51.100.4: "
    "container not ready (unhealthy)",
]
KAMAL1_HEALTHY = [
    *KAMAL1_HEALTHCHECK[:3],
    "  INFO [9d8c7b6a] Running docker container ls --all --filter name=^healthcheck-web$ … on h",
    "  Finished all in 22.3 seconds",
]

SSH_DNS_KAMAL = [
    "Pull app image...",
    "  Finished all in 0.4 seconds",
    "  ERROR (SocketError): Exception while executing on host app-1.internal.example: "
    "getaddrinfo: Name or service not known",
]
SSH_IO_TIMEOUT_KAMAL = [
    f"  INFO [e1e2e3e4] Running docker pull {IMAGE} on 203.0.113.10",
    "  Finished all in 64.9 seconds",
    "  ERROR (IO::TimeoutError): Exception while executing on host 203.0.113.10: "
    "Blocking operation timed out!",
]
SSH_DISCONNECT_KAMAL = [
    "Pull app image...",
    "  Finished all in 1.3 seconds",
    "  ERROR (Net::SSH::Disconnect): Exception while executing on host 203.0.113.10: "
    "connection closed by remote host",
]


def health_answered(status: int) -> list[str]:
    """kamal-proxy got an answer from the health path, but not a 2xx; then Kamal's relay."""
    return [
        '{"time":"2026-05-01T10:00:01.5Z","level":"INFO","msg":"Healthcheck failed",'
        f'"error":"unexpected status ({status})"}}',
        f'172.18.0.2 - - [01/May/2026:10:00:02 +0000] "GET /up HTTP/1.1" {status} 0 "-" '
        '"kamal-proxy"',
        "  Finished all in 44.0 seconds",
        "  ERROR (SSHKit::Command::Failed): Exception while executing on host 203.0.113.10: "
        "docker exit status: 1",
        "docker stderr: Error: target failed to become healthy within configured timeout (30s)",
    ]


# Successful logs full of words that look like trouble.
SCARY_SUCCESS_LOG = github_log(
    SET_UP,
    [
        "##[group]Run npm ci",
        "npm ci",
        "##[endgroup]",
        "err: npm WARN deprecated inflight@1.0.6: This module is not supported",
        "Error: 0 vulnerabilities found",
    ],
    [line for line in DEPLOY_OK if line != "Acquiring the deploy lock..."][:12],
    [
        "Acquiring the deploy lock (waiting up to 60s)...",
        "Deploy lock is held by:",
        "Locked by: Ana Lima at 2026-05-01T09:58:12Z",
        "Retrying in 10s (49s remaining)...",
    ],
    DEPLOY_OK[12:],
    CLEANUP,
)
CANCELLED_LOG = github_log(
    SET_UP,
    DEPLOY_OK[:10],
    ["##[error]The operation was canceled."],
    CLEANUP,
)

# Kamal 2.11 (the real binary) booting a role kamal-proxy does not serve (`proxy: false`, a
# worker): its poller waits for docker to say running/healthy, then gives up.
WORKER_NOT_READY = [
    "  INFO Waiting for the first healthy web container before booting workers on 10.0.0.7...",
    "  INFO First web container is healthy, booting workers on 10.0.0.7...",
    f"  INFO [33d92f6c] Running docker run --detach --restart unless-stopped --name "
    f"web-workers-{SHA} --network kamal … {IMAGE} on 10.0.0.7",
    "  INFO [33d92f6c] Finished in 0.367 seconds with exit status 0 (successful).",
    f"  INFO [ff6a5835] Running docker container ls --all --filter 'name=^web-workers-{SHA}$' "
    "--quiet | xargs docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}"
    "{{else}}{{.State.Status}}{{end}}' on 10.0.0.7",
    "  INFO [ff6a5835] Finished in 0.615 seconds with exit status 0 (successful).",
    " ERROR Failed to boot workers on 10.0.0.7",
    "Releasing the deploy lock...",
    "  Finished all in 41.1 seconds",
    "  \x1b[31mERROR (Kamal::Cli::Healthcheck::Error): Exception while executing on host "
    "10.0.0.7: container not ready after 30 seconds (exited)\x1b[0m",
]

# Kamal 2.11 when `docker run` itself fails: it says the first web container is "unhealthy"
# although no health check ever ran.
RUN_FAILED_KAMAL = [
    f"  INFO [16485da3] Running docker run --detach --restart unless-stopped --name web-web-{SHA} "
    f"… {IMAGE} on 203.0.113.10",
    " ERROR Failed to boot web on 203.0.113.10",
    "  INFO First web container is unhealthy on 203.0.113.10, not booting any other roles",
    "Releasing the deploy lock...",
    "  Finished all in 5.1 seconds",
    "  \x1b[31mERROR (SSHKit::Command::Failed): Exception while executing on host 203.0.113.10: "
    "docker exit status: 125",
    "docker stdout: Nothing written",
    f'docker stderr: docker: Error response from daemon: Conflict. The container name "/web-web-'
    f'{SHA}" is already in use by container "4fce50914392".',
    "\x1b[0m",
]

# What the kamal-ssh strategy runs for a version not kept: `kamal rollback` (nothing to boot,
# exit 0), then `kamal deploy --skip-push --version`, here failing at the pull.
ROLLBACK_THEN_DEPLOY_MISSING = [
    "Acquiring the deploy lock...",
    f"The app version '{OLD_SHA}' is not available as a container (use 'kamal app containers' "
    "for available versions)",
    "Releasing the deploy lock...",
    "  Finished all in 1.4 seconds",
    "Pull app image...",
    f"  INFO [92e906ca] Running docker pull ghcr.io/acme/web:{OLD_SHA} on 203.0.113.10",
    "  Finished all in 1.6 seconds",
    "  \x1b[31mERROR (SSHKit::Command::Failed): Exception while executing on host 203.0.113.10: "
    "docker exit status: 1",
    "docker stdout: Nothing written",
    "docker stderr: Error response from daemon: manifest unknown",
    "\x1b[0m",
]
