"""Which changed files are database migrations (pure).

A rollback restores code and image, never the database: when migrations landed between the
rollback target and the live version, the older code will run against a newer schema. The
preflight lists those files from GitHub's compare (target...live), filtered here by the
directory conventions of the common migration tools.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["migration_files"]

# A migration tool's directory anywhere in the path (monorepos nest them), then a file in it.
_MIGRATION_DIR = re.compile(
    r"(?:^|/)(?:"
    r"db/migrate"  # Rails
    r"|alembic/versions"  # Alembic (Flask-Migrate: migrations/versions, matched below)
    r"|migrations?"  # Django apps, Prisma, Laravel, Ecto, knex, sequelize, golang-migrate,
    # Flyway's db/migration, TypeORM, Supabase, Diesel
    r"|db/changelog"  # Liquibase
    r"|drizzle"  # drizzle-kit's default output folder
    r")/[^/]"
)
# Documentation about migrations is not a migration.
_DOCS = re.compile(r"(?i)(?:^|/)(?:docs?|documentation)/|\.(?:md|rst|txt|adoc)$")


def migration_files(files: Iterable[str]) -> list[str]:
    """The paths in `files` that are migrations, in the order given, without repeats."""
    found: list[str] = []
    seen: set[str] = set()
    for path in files:
        if path in seen or not _MIGRATION_DIR.search(path) or _DOCS.search(path):
            continue
        seen.add(path)
        found.append(path)
    return found
