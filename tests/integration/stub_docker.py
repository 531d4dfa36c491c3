#!/usr/bin/env python3
"""A stand-in for `docker` on the OpenSSH test server, for running the REAL Kamal against it.

Kamal drives docker over SSH with shell command lines; this answers the ones it sends for
deploy, rollback and the proxy step, keeping containers and images as JSON files under
`$STUB_DOCKER_STATE` (set for the sshd session), and logs every argv to `argv.log` there, so a
test can say what Kamal really sent. `registry/<ref>.json` lists the images "in GHCR" (a pull
of anything else fails with GHCR's `manifest unknown`); a version named in `unhealthy` never
passes kamal-proxy's health check (its app listens on 127.0.0.1); of a version in `crashing`,
the containers of roles other than `web` exit at once. `kamal-proxy deploy` writes what
kamal-proxy logs (`Deploying`, `Target health updated` healthy/was adding, `Deployed`) to
`proxy.log`, which `docker logs kamal-proxy` prints with docker's timestamps. Anything else
exits 125 naming the unknown command, so a change in what Kamal sends fails loudly.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

STATE = Path(os.environ.get("STUB_DOCKER_STATE", "/nonexistent"))
PROXY = "kamal-proxy"


def now_go() -> str:
    """RFC 3339 with nanoseconds, as docker and Go's slog print times."""
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond * 1000:09d}Z"


def die(message: str, status: int = 1) -> None:
    print(message, file=sys.stderr)
    sys.exit(status)


def ref_file(folder: str, ref: str) -> Path:
    return STATE / folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", ref) + ".json")


def load(path: Path) -> dict[str, object]:
    return dict(json.loads(path.read_text()))


def save(path: Path, doc: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def containers() -> list[dict[str, object]]:
    folder = STATE / "containers"
    found = [load(path) for path in folder.glob("*.json")] if folder.exists() else []
    return sorted(found, key=lambda c: float(str(c["created"])), reverse=True)  # newest first


def find_container(key: str) -> dict[str, object] | None:
    for container in containers():
        if key in (container["name"], container["id"]) or str(container["id"]).startswith(key):
            return container
    return None


def image(ref: str) -> dict[str, object] | None:
    path = ref_file("images", ref)
    return load(path) if path.exists() else None


def options(args: list[str], flags: set[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Split `--opt value`, `--opt=value` and boolean `flags` from the positional words."""
    found: dict[str, list[str]] = {}
    rest: list[str] = []
    index = 0
    while index < len(args):
        word = args[index]
        if word == "--":
            rest += args[index + 1 :]
            break
        if word.startswith("-") and len(word) > 1:
            name, eq, value = word.partition("=")
            if name in flags:
                found.setdefault(name, []).append("true")
            elif eq:
                found.setdefault(name, []).append(value)
            else:
                index += 1
                found.setdefault(name, []).append(args[index])
        else:
            rest.append(word)
        index += 1
    return found, rest


def render(template: str, fields: dict[str, str]) -> str:
    """Go-template `{{ .Field }}` / `{{json .X}}` for the fields Kamal asks for only."""

    # Kamal's poller for a role kamal-proxy does not serve (no Docker HEALTHCHECK here).
    health = "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}"
    template = template.replace(health, fields.get(".State.Status", ""))

    def one(match: re.Match[str]) -> str:
        key = " ".join(match.group(1).split())
        if key not in fields:
            die(f"stub docker: template field {key!r} not known", 125)
        return fields[key]

    return re.sub(r"\{\{(.*?)\}\}", one, template)


def container_fields(container: dict[str, object]) -> dict[str, str]:
    labels = dict(container["labels"])  # type: ignore[call-overload]
    running = container["state"] == "running"
    return {
        ".ID": str(container["id"])[:12],
        ".Names": str(container["name"]),
        ".Image": str(container["image"]),
        ".Config.Image": str(container["image"]),
        ".State.Status": str(container["state"]),
        ".State.Running": "true" if running else "false",
        "json .State.Health": "null",
        ".Status": "Up 2 seconds" if running else "Exited (0) 1 second ago",
        **{f".Label {name}": str(value) for name, value in labels.items()},
        **{f'.Label "{name}"': str(value) for name, value in labels.items()},
    }


def matches(container: dict[str, object], filters: list[str]) -> bool:
    """docker's --filter: the same key ANDed across keys, ORed within one (status=…)."""
    by_key: dict[str, list[str]] = {}
    for item in filters:
        key, _, value = item.partition("=")
        by_key.setdefault(key, []).append(value)
    labels = dict(container["labels"])  # type: ignore[call-overload]
    for key, values in by_key.items():
        if key == "name":
            if not any(re.search(value, str(container["name"])) for value in values):
                return False
        elif key == "label":
            for value in values:
                name, _, wanted = value.partition("=")
                if name not in labels or (wanted and labels[name] != wanted):
                    return False
        elif key == "status":
            if str(container["state"]) not in values:
                return False
        elif key == "ancestor":
            image_id = str(container["image_id"])
            if not any(v == container["image"] or (v and image_id.startswith(v)) for v in values):
                return False
        else:
            die(f"stub docker: filter {key!r} not known", 125)
    return True


def container_ls(args: list[str]) -> None:
    opts, _ = options(args, {"--all", "-a", "--quiet", "-q", "--latest", "-l", "--no-trunc"})
    show_all = "--all" in opts or "-a" in opts
    found = [
        c
        for c in containers()
        if (show_all or c["state"] == "running") and matches(c, opts.get("--filter", []))
    ]
    if "--latest" in opts or "-l" in opts:
        found = found[:1]
    if "--quiet" in opts or "-q" in opts:
        for container in found:
            print(str(container["id"])[:12])
        return
    template = opts.get("--format", [""])[-1]
    if template:
        for container in found:
            print(render(template, container_fields(container)))
        return
    print("CONTAINER ID   IMAGE   COMMAND   CREATED   STATUS   PORTS   NAMES")
    for container in found:
        f = container_fields(container)
        print(f'{f[".ID"]}   {f[".Image"]}   "/start"   now   {f[".Status"]}      {f[".Names"]}')


def run(args: list[str]) -> None:
    flags = {"--detach", "-d", "--rm", "-i", "-t", "--init", "--privileged"}
    opts, rest = options(args, flags)
    ref = rest[0]
    name = opts.get("--name", [f"stub_{secrets.token_hex(4)}"])[-1]
    if find_container(name) is not None:
        die(
            f'docker: Error response from daemon: Conflict. The container name "/{name}" is '
            "already in use.",
            125,
        )
    known = image(ref)
    if known is None and name != PROXY:
        die(f"Unable to find image '{ref}' locally", 125)
    labels = dict(known["labels"]) if known else {}  # type: ignore[call-overload]
    for label in opts.get("--label", []):
        key, _, value = label.partition("=")
        labels[key] = value.strip('"')
    cid = secrets.token_hex(32)
    version = ref.rpartition(":")[2]
    bind = "127.0.0.1" if version in unhealthy() else "0.0.0.0"  # the classic health failure
    crashes = version in listed("crashing") and labels.get("role") not in (None, "web")
    save(
        ref_file("containers", name),
        {
            "id": cid,
            "name": name,
            "image": ref,
            "image_id": str(known["id"]) if known else "",
            "labels": labels,
            "state": "exited" if crashes else "running",
            "created": time.time(),
            "env": opts.get("--env", []) + opts.get("-e", []),
            "log": [f"{now_go()} Booting shop", f"{now_go()} Listening on http://{bind}:80"],
        },
    )
    print(cid)


def listed(name: str) -> list[str]:
    """The versions listed in the state file `name` (`unhealthy`, `crashing`)."""
    path = STATE / name
    return path.read_text().split() if path.exists() else []


def unhealthy() -> list[str]:
    return listed("unhealthy")


def set_state(keys: list[str], state: str) -> None:
    for key in keys:
        container = find_container(key)
        if container is None:
            die(f"Error response from daemon: No such container: {key}")
        assert container is not None
        container["state"] = state
        save(ref_file("containers", str(container["name"])), container)
        print(key)


def rename(args: list[str]) -> None:
    old, new = args
    container = find_container(old)
    if container is None:
        die(f"Error response from daemon: No such container: {old}")
    assert container is not None
    ref_file("containers", str(container["name"])).unlink()
    save(ref_file("containers", new), {**container, "name": new})


def rm(args: list[str]) -> None:
    _, keys = options(args, {"--force", "-f", "-v"})
    for key in keys:
        container = find_container(key)
        if container is None:
            die(f"Error response from daemon: No such container: {key}")
        assert container is not None
        ref_file("containers", str(container["name"])).unlink()
        print(key)


def pull(args: list[str]) -> None:
    _, rest = options(args, {"--quiet", "-q"})
    ref = rest[0]
    published = ref_file("registry", ref)
    if not published.exists():
        die("Error response from daemon: manifest unknown")
    save(ref_file("images", ref), load(published))
    print(f"{ref.rpartition(':')[2]}: Pulling from {ref.rpartition(':')[0]}")
    print(f"Status: Downloaded newer image for {ref}")
    print(ref)


def inspect(args: list[str]) -> None:
    opts, keys = options(args, {"--size", "-s"})
    template = (opts.get("--format", []) + opts.get("-f", []) or ["{{json .}}"])[-1]
    status = 0
    for key in keys:
        container = find_container(key)
        if container is not None:
            print(render(template, container_fields(container)))
            continue
        found = image(key)
        if found is None:
            print(f"Error: No such object: {key}", file=sys.stderr)
            status = 1
            continue
        labels = dict(found["labels"])  # type: ignore[call-overload]
        fields = {f".Config.Labels.{name}": value for name, value in labels.items()}
        fields.setdefault(".Config.Labels.service", "<no value>")
        print(render(template, fields))
    sys.exit(status)


def proxy_log(msg: str, **attrs: object) -> None:
    record = {"time": now_go(), "level": "INFO", "msg": msg, **attrs}
    line = json.dumps(record, separators=(",", ":"))
    with open(STATE / "proxy.log", "a") as log:
        log.write(f"{now_go()} {line}\n")


def proxy_deploy(args: list[str]) -> None:
    """`kamal-proxy deploy SERVICE --target=ID:PORT …`: healthy unless the version is listed
    in `unhealthy`; then the CLI's error, as kamal-proxy returns it."""
    opts, rest = options(args, {"--tls", "--buffer-requests", "--buffer-responses", "--force"})
    service, target = rest[0], opts["--target"][-1]
    hosts = opts.get("--host", [])
    timeout = opts.get("--deploy-timeout", ["30s"])[-1]
    proxy_log("Deploying", service=service, targets=[target], hosts=hosts, tls="--tls" in opts)
    container = find_container(target.rpartition(":")[0])
    version = str(container["name"]).rpartition("-")[2] if container else ""
    if version in unhealthy():
        die(f"Error: target failed to become healthy within configured timeout ({timeout})")
    proxy_log("Target health updated", target=target, state="healthy", was="adding")
    proxy_log("Deployed", service=service, targets=[target], hosts=hosts, tls="--tls" in opts)


def logs(args: list[str]) -> None:
    """`docker logs [--follow] [--timestamps] [--since T | --tail N] -- kamal-proxy`."""
    opts, rest = options(args, {"--follow", "-f", "--timestamps", "-t"})
    if rest != [PROXY]:
        container = find_container(rest[0])
        if container is None:
            die(f"Error response from daemon: No such container: {rest[0]}")
        assert container is not None
        for line in container["log"]:  # type: ignore[attr-defined]
            print(line if "--timestamps" in opts else line.split(" ", 1)[1])
        return
    path = STATE / "proxy.log"
    path.touch()
    stamps = "--timestamps" in opts or "-t" in opts
    with path.open() as log:
        while True:
            line = log.readline()
            if line:
                print(line.rstrip("\n") if stamps else line.split(" ", 1)[1].rstrip("\n"))
                sys.stdout.flush()
            elif "--follow" in opts or "-f" in opts:
                time.sleep(0.05)
            else:
                return


def image_matches(found: dict[str, object], filters: list[str]) -> bool:
    labels = dict(found["labels"])  # type: ignore[call-overload]
    for item in filters:
        key, _, value = item.partition("=")
        if key == "reference" and found["ref"] != value:
            return False
        if key == "label":
            name, _, wanted = value.partition("=")
            if name not in labels or (wanted and labels[name] != wanted):
                return False
        if key not in ("reference", "label"):
            die(f"stub docker: image filter {key!r} not known", 125)
    return True


def image_cmd(sub: str, args: list[str]) -> None:
    if sub in ("rm", "rmi"):
        opts, refs = options(args, {"--force", "-f"})
        for ref in refs:
            path = ref_file("images", ref)
            if path.exists():
                path.unlink()
            elif "--force" not in opts and "-f" not in opts:
                die(f"Error response from daemon: No such image: {ref}")
        return
    if sub == "prune":
        return
    if sub in ("ls", "list"):
        opts, _ = options(args, {"--quiet", "-q", "--all", "-a"})
        for path in sorted((STATE / "images").glob("*.json")):
            found = load(path)
            if not image_matches(found, opts.get("--filter", [])):
                continue
            repository, _, tag = str(found["ref"]).rpartition(":")
            fields = {".Repository": repository, ".Tag": tag, ".ID": str(found["id"])[:12]}
            print(render(opts.get("--format", ["{{.Repository}}:{{.Tag}}"])[-1], fields))
        return
    if sub == "inspect":
        inspect(args)
    die(f"stub docker: image {sub} not known", 125)


def tag(args: list[str]) -> None:
    source, target = args
    found = image(source)
    if found is None:
        die(f"Error response from daemon: No such image: {source}")
    assert found is not None
    save(ref_file("images", target), {**found, "ref": target})


def main(argv: list[str]) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "argv.log", "a") as log:
        log.write(json.dumps(argv) + "\n")
    if not argv:
        die("stub docker: no command", 125)
    command, args = argv[0], argv[1:]
    if command == "container" and args:
        command, args = args[0], args[1:]
        if command in ("ls", "list"):
            command = "ps"
    if command == "image" and args:
        image_cmd(args[0], args[1:])
    elif command == "rmi":
        image_cmd("rm", args)
    elif command == "ps":
        container_ls(args)
    elif command == "run":
        run(args)
    elif command in ("stop", "start"):
        set_state(options(args, set())[1], "running" if command == "start" else "exited")
    elif command == "rename":
        rename(args)
    elif command == "rm":
        rm(args)
    elif command == "pull":
        pull(args)
    elif command == "inspect":
        inspect(args)
    elif command == "tag":
        tag(args)
    elif command == "logs":
        logs(args)
    elif command == "login":
        print("Login Succeeded")
    elif command == "network" and args[:1] == ["create"]:
        marker = STATE / "network"
        if marker.exists():
            die(f"Error response from daemon: network with name {args[-1]} already exists")
        marker.touch()
        print(secrets.token_hex(32))
    elif command == "exec" and args[:3] == [PROXY, PROXY, "deploy"]:
        proxy_deploy(args[3:])
    elif command in ("-v", "version", "--version"):
        print("Docker version 27.5.1, build stub")
    else:
        die(f"stub docker: {' '.join(argv)[:200]}: not known", 125)


if __name__ == "__main__":
    main(sys.argv[1:])
