"""Short, distinct host names for log labels (`kamal-proxy@web-1`), from an environment's hosts.

The VM watcher labels each spool line with `host` (port 22) or `host:port`; a log pane shows the
shortest form that still tells the environment's hosts apart: the first DNS label, else the
host without its port, else the whole label.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from vmkit_tui.config import HostSpec


def spool_host(spec: HostSpec) -> str:
    """The host label the VM watcher writes into the spool for `spec`."""
    if spec.port in (None, 22):
        return spec.host
    return f"[{spec.host}]:{spec.port}" if ":" in spec.host else f"{spec.host}:{spec.port}"


def _without_port(label: str) -> str:
    if label.startswith("["):
        return label[1 : label.index("]")]
    name, colon, port = label.rpartition(":")
    return name if colon and port.isdigit() and ":" not in name else label


def _first_label(label: str) -> str:
    name = _without_port(label)
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name.split(".", 1)[0]
    return name  # an address has no short form


def short_names(hosts: Iterable[str]) -> dict[str, str]:
    """Spool host label → the shortest form that keeps every host of the set distinct."""
    labels = sorted(set(hosts))
    for shorten in (_first_label, _without_port):
        short = {label: shorten(label) for label in labels}
        if len(set(short.values())) == len(labels):
            return short
    return {label: label for label in labels}
