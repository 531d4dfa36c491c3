"""Every tag of one GHCR image, in one listing: what the rollback-eligibility refresh asks once
per repo, rather than one `image_tags_present` call per deploy row.

The package versions are paged through with the client's conditional GETs, so an unchanged
listing costs 304s (free of the primary rate limit). Without `read:packages` GitHub answers
403 or 404: that is "cannot list" with the reason, never "no tags".
"""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass
from urllib.parse import quote

from vmkit_tui.sources.github.client import _IMAGE, GitHubClient, _path, _tags
from vmkit_tui.sources.github.errors import AuthError, NotFound

__all__ = ["TagListing", "list_image_tags"]


@dataclass(frozen=True, slots=True)
class TagListing:
    """The image's tags (None: could not list, `problem` says why); `complete` False when the
    listing stopped at `max_pages` with versions left unread."""

    tags: frozenset[str] | None
    problem: str = ""
    complete: bool = True


async def list_image_tags(client: GitHubClient, image: str, *, max_pages: int = 20) -> TagListing:
    """All tags of `image` (ghcr.io/owner/name) among its newest `max_pages` × 100 versions."""
    match = _IMAGE.fullmatch(image)
    if match is None:
        return TagListing(None, f"{image[:100]!r} is not a ghcr.io image")
    owner, name = match.groups()
    package = quote(name, safe="")
    known = client._owner_kinds.get(owner)
    for kind in [known] if known else ["orgs", "users"]:
        url = f"{client.api_url}/{kind}/{_path(owner)}/packages/container/{package}/versions"
        tags: set[str] = set()
        more = False
        try:
            async with aclosing(client._pages(url, {"per_page": 100}, None, max_pages)) as pages:
                async for reply, versions in pages:
                    more = reply.next_url is not None
                    for version in versions:
                        tags.update(tag for tag in _tags(version) if isinstance(tag, str))
        except NotFound:
            continue
        except AuthError as error:
            if error.status == 401:
                raise
            return TagListing(
                None,
                "the token cannot read packages (GHCR needs a classic token with read:packages: "
                f"`gh auth refresh -s read:packages`): {error}",
            )
        client._owner_kinds[owner] = kind
        return TagListing(frozenset(tags), complete=not more)
    return TagListing(
        None, f"package ghcr.io/{owner}/{name} not found, or the token lacks read:packages"
    )
