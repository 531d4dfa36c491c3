"""Real-shaped files in the sandbox's repositories, served by its contents API: each repo's
deploy workflow (a `workflow_dispatch` taking `sha` and `environment`) and its Kamal config,
`config/deploy.yml` plus one `config/deploy.<environment>.yml` per environment, whose servers
are the sandbox VMs' SSH addresses on 127.0.0.1. No repo has a Procfile: the sandbox's
buildpack failure is the one of an app without one.

The three stacks use the three shapes real projects write, so `vmkit-tui init` meets each:
ruby (storefront) lists servers per role as a table with `hosts` and tags; nodejs (billing-api)
lists them as a plain list and takes values from ERB `ENV` lookups; python (my-fastapi-app)
puts the production servers in the base file and overrides them in a destination file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vmkit_tui.sandbox.world.github import Repo
from vmkit_tui.sandbox.world.world import World

HEALTH_PATHS = {"ruby": "/up", "nodejs": "/healthz", "python": "/health"}


def repo_files(
    world: World, address: Callable[[str], str], user: str, key_path: Path
) -> dict[str, dict[str, str]]:
    """Every repo's files; `address(vm)` is the VM's `127.0.0.1:PORT`."""
    files: dict[str, dict[str, str]] = {}
    for repo in world.repos.values():
        envs = {env.name: [address(vm) for vm in env.vm_names] for env in world.environments(repo)}
        found = {
            flow.path: _workflow(repo, flow.name, list(envs)) for flow in world.workflows(repo)
        }
        found |= _kamal(repo, envs, world.environments(repo)[0].service, user, key_path)
        files[repo.full_name] = found
    return files


def _workflow(repo: Repo, name: str, environments: list[str]) -> str:
    options = "".join(f"          - {env}\n" for env in environments)
    return (
        f"name: {name}\n"
        "on:\n"
        "  push:\n"
        f"    branches: [{', '.join(_branches(repo, environments))}]\n"
        "  workflow_dispatch:\n"
        "    inputs:\n"
        "      sha:\n"
        "        description: Commit to deploy (full SHA)\n"
        "        required: true\n"
        "      environment:\n"
        "        type: choice\n"
        "        options:\n"
        f"{options}"
        "      request_id:\n"
        "        required: false\n"
        "jobs:\n"
        "  deploy:\n"
        "    runs-on: ubuntu-latest\n"
        "    environment: ${{ inputs.environment || github.ref_name }}\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "      - run: kamal deploy -d ${{ inputs.environment || 'production' }} "
        "--skip-push --version ${{ inputs.sha || github.sha }}\n"
    )


def _branches(repo: Repo, environments: list[str]) -> list[str]:
    return [repo.default_branch, *(env for env in environments if env != "production")]


def _kamal(
    repo: Repo, envs: dict[str, list[str]], service: str, user: str, key_path: Path
) -> dict[str, str]:
    image = repo.image.removeprefix("ghcr.io/")
    stack = repo.stack.name
    base = [
        f"service: {service}",
        f"image: {image}",
        "registry:",
        "  server: ghcr.io",
        "  username: <%= ENV['KAMAL_REGISTRY_USERNAME'] %>"
        if stack == "nodejs"
        else f"  username: {repo.owner}",
        "  password:",
        "    - KAMAL_REGISTRY_PASSWORD",
        "builder:",
        "  arch: amd64",
        "ssh:",
        f'  user: <%= ENV.fetch("KAMAL_SSH_USER", "{user}") %>'
        if stack == "nodejs"
        else f"  user: {user}",
        "  keys:",
        f"    - {key_path}",
        "proxy:",
        "  healthcheck:",
        f"    path: {HEALTH_PATHS.get(stack, '/up')}",
    ]
    files: dict[str, str] = {}
    if stack == "python" and "production" in envs:
        base[2:2] = [
            "servers:",
            "  web:",
            "    hosts:",
            *(f"      - {h}" for h in envs["production"]),
        ]
    files["config/deploy.yml"] = "\n".join(base) + "\n"
    for env, hosts in envs.items():
        if stack == "ruby":  # a table per role, hosts tagged
            lines = ["servers:", "  web:", "    hosts:"]
            lines += [f"      - {h}: [{env}, zone-{i % 2 + 1}]" for i, h in enumerate(hosts)]
        elif stack == "nodejs":  # a plain list
            lines = ["servers:", *(f"  - {h}" for h in hosts)]
        elif env == "production":  # the base file's servers stand
            lines = []
        else:
            lines = ["servers:", "  web:", "    hosts:", *(f"      - {h}" for h in hosts)]
        lines += ["proxy:", f"  host: {env}.{repo.name}.example.test"]
        files[f"config/deploy.{env}.yml"] = "\n".join(lines) + "\n"
    return files
