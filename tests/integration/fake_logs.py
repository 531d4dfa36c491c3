"""Stand-in for `docker logs [--follow] --timestamps` and `journalctl [--follow] -o json`, run on
the test "VM" over SSH. Reads a file of `<index> <epoch-ns> <text>` lines that the test appends
to, and honours the resume options vmkit-tui sends: `--since <RFC 3339>` / `--since @<epoch>`
(inclusive, like docker and journalctl), `--after-cursor s=test;i=<hex index>`, `--tail N` /
`--lines N`.

Usage: fake_logs.py docker|journal [options] <file>
"""

import calendar
import json
import sys
import time

mode, *args = sys.argv[1:]
path = args[-1]


def option(name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def to_ns(stamp: str) -> int:
    if stamp.startswith("@"):
        return int(stamp[1:]) * 10**9
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds * 10**9 + int(fraction.ljust(9, "0"))


def render(index: int, ns: int, text: str) -> str:
    if mode == "journal":
        entry = {
            "__CURSOR": f"s=test;i={index:x}",
            "__REALTIME_TIMESTAMP": str(ns // 1000),
            "MESSAGE": text,
        }
        return json.dumps(entry)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9))
    return f"{stamp}.{ns % 10**9:09d}Z {text}"


since = option("--since")
since_ns = to_ns(since) if since else None
after = option("--after-cursor")
after_index = int(after.split("i=")[1], 16) if after else None
tail = option("--tail") or option("--lines")

with open(path, "rb") as source:
    lines = source.read().split(b"\n")
    pending = lines.pop()
    if tail is not None and since is None and after is None:
        lines = lines[-int(tail) :] if int(tail) else []
    while True:
        for raw in lines:
            index_text, ns_text, text = raw.decode().split(" ", 2)
            index, ns = int(index_text), int(ns_text)
            if after_index is not None and index <= after_index:
                continue
            if since_ns is not None and ns < since_ns:
                continue
            sys.stdout.write(render(index, ns, text) + "\n")
        sys.stdout.flush()
        if "--follow" not in args:
            break
        chunk = source.read()
        while not chunk:
            time.sleep(0.005)  # a stand-in for `tail -f`: wait for the test to append
            chunk = source.read()
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
