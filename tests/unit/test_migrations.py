"""migration_files: the changed paths that are database migrations, by tool convention."""

from __future__ import annotations

import pytest

from vmkit_tui.domain.migrations import migration_files

MIGRATIONS = [
    "db/migrate/20260501120000_add_due_date_to_invoices.rb",  # Rails
    "alembic/versions/e64774e69a5d_rename_customers_to_accounts.py",  # Alembic
    "prisma/migrations/20260501120000_init/migration.sql",  # Prisma
    "billing/migrations/0007_drop_coupon_code.py",  # Django app
    "migrations/versions/3f2a_add_index.py",  # Flask-Migrate
    "src/main/resources/db/migration/V3__add_column.sql",  # Flyway
    "database/migrations/2026_05_01_000000_create_orders_table.php",  # Laravel
    "priv/repo/migrations/20260501_add_users.exs",  # Ecto
    "supabase/migrations/20260501_policies.sql",
    "db/changelog/changes/004-add-index.xml",  # Liquibase
    "drizzle/0003_brave_hulk.sql",
    "services/api/db/migrate/20260101_x.rb",  # nested in a monorepo
]

NOT_MIGRATIONS = [
    "app/models/invoice.rb",
    "db/schema.rb",  # the schema dump changes with every migration, but is not one
    "prisma/schema.prisma",
    "docs/migrations/how-to.md",  # documentation about migrations
    "migrations.md",
    "db/migrate",  # the directory itself, not a file in it
    "lib/migrator/runner.py",
    "src/data_migrations_helper.py",
    "app/migrations/README.md",
]


@pytest.mark.parametrize("path", MIGRATIONS)
def test_migration_paths_are_found(path: str) -> None:
    assert migration_files([path]) == [path]


@pytest.mark.parametrize("path", NOT_MIGRATIONS)
def test_other_paths_are_not_migrations(path: str) -> None:
    assert migration_files([path]) == []


def test_order_is_kept_and_repeats_dropped() -> None:
    files = [
        "app/main.py",
        MIGRATIONS[1],
        "README.md",
        MIGRATIONS[0],
        MIGRATIONS[1],
    ]
    assert migration_files(files) == [MIGRATIONS[1], MIGRATIONS[0]]
    assert migration_files([]) == []
