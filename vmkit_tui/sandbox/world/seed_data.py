"""Vocabulary for believable sandbox content: app stacks, people, commit messages, files.

Only data and tiny pure helpers; every choice among these is made by the world's seeded
`random.Random`, so the same seed gives the same world.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Stack:
    """How an app of one language builds (buildpack) and what its container prints."""

    name: str
    buildpack: str
    buildpack_version: str
    runtime_line: str
    app_port: int
    migration_dir: str
    source_files: tuple[str, ...]
    boot_lines: tuple[str, ...]
    listen_line: (
        str  # formatted with {addr}: "0.0.0.0" (good) or "127.0.0.1" (the health-timeout bug)
    )
    request_line: str  # formatted with ip, port, path, status, ms, rid, views, ar


RUBY = Stack(
    name="ruby",
    buildpack="heroku/ruby",
    buildpack_version="7.0.2",
    runtime_line="Installing Ruby 3.4.4",
    app_port=3000,
    migration_dir="db/migrate",
    source_files=(
        "app/controllers/checkout_controller.rb",
        "app/controllers/products_controller.rb",
        "app/models/order.rb",
        "app/models/product.rb",
        "app/models/customer.rb",
        "app/views/products/index.html.erb",
        "app/jobs/send_receipt_job.rb",
        "config/routes.rb",
        "config/deploy.yml",
        "Gemfile",
        "Gemfile.lock",
        "test/models/order_test.rb",
        "test/controllers/checkout_controller_test.rb",
        "app/javascript/controllers/cart_controller.js",
    ),
    boot_lines=(
        "=> Booting Puma",
        "=> Rails 8.0.2 application starting in production",
        "=> Run `bin/rails server --help` for more startup options",
        "Puma starting in single mode...",
        '* Puma version: 6.6.0 ("Return to Forever")',
        "* Ruby version: ruby 3.4.4 (2025-05-14 revision a38531fd3f) +PRISM [x86_64-linux]",
        "*  Min threads: 3",
        "*  Max threads: 3",
        "*  Environment: production",
        "*          PID: 1",
    ),
    listen_line="* Listening on http://{addr}:3000",
    request_line=(
        "[{rid}] Completed {status} OK in {ms}ms (Views: {views}ms | ActiveRecord: {ar}ms | GC: 0.0ms)"
    ),
)

NODE = Stack(
    name="nodejs",
    buildpack="heroku/nodejs",
    buildpack_version="4.1.3",
    runtime_line="Installing Node.js 22.16.0",
    app_port=3000,
    migration_dir="prisma/migrations",
    source_files=(
        "src/server.ts",
        "src/routes/invoices.ts",
        "src/routes/payments.ts",
        "src/services/stripe.ts",
        "src/services/ledger.ts",
        "src/jobs/dunning.ts",
        "prisma/schema.prisma",
        "package.json",
        "package-lock.json",
        "test/invoices.test.ts",
        "test/payments.test.ts",
        "config/deploy.yml",
    ),
    boot_lines=(
        "> billing-api@2.14.0 start",
        "> node dist/server.js",
        '{"level":30,"msg":"connecting to postgres","pool":10}',
        '{"level":30,"msg":"prisma client ready"}',
    ),
    listen_line='{{"level":30,"msg":"Server listening at http://{addr}:3000"}}',
    request_line=(
        '{{"level":30,"req":{{"method":"GET","url":"{path}","remoteAddress":"{ip}"}},'
        '"res":{{"statusCode":{status}}},"responseTime":{ms},"msg":"request completed"}}'
    ),
)

PYTHON = Stack(
    name="python",
    buildpack="heroku/python",
    buildpack_version="1.2.1",
    runtime_line="Installing Python 3.13.5",
    app_port=8000,
    migration_dir="alembic/versions",
    source_files=(
        "app/main.py",
        "app/routers/items.py",
        "app/routers/users.py",
        "app/models.py",
        "app/schemas.py",
        "app/db.py",
        "app/settings.py",
        "requirements.txt",
        "tests/test_items.py",
        "tests/test_users.py",
        "config/deploy.yml",
    ),
    boot_lines=(
        "INFO:     Started server process [1]",
        "INFO:     Waiting for application startup.",
        "INFO:     Application startup complete.",
    ),
    listen_line="INFO:     Uvicorn running on http://{addr}:8000 (Press CTRL+C to quit)",
    request_line='INFO:     {ip}:{port} - "GET {path} HTTP/1.1" {status} OK',
)


@dataclass(frozen=True, slots=True)
class RepoSpec:
    owner: str
    name: str
    stack: Stack
    image: str  # full image reference without tag; the package name is the part after the owner
    public_host: str
    environments: tuple[tuple[str, int], ...]  # (environment name, number of VMs)


FASTAPI_APP = RepoSpec(
    "acme",
    "my-fastapi-app",
    PYTHON,
    "ghcr.io/acme/my-fastapi-app",
    "api.acme.dev",
    (("production", 1), ("staging", 1)),
)

DEMO_REPOS = (
    RepoSpec(
        "acme",
        "storefront",
        RUBY,
        "ghcr.io/acme/storefront",
        "shop.acme.dev",
        (("production", 2), ("staging", 1), ("preview", 1)),
    ),
    RepoSpec(
        "acme",
        "billing-api",
        NODE,
        "ghcr.io/acme/billing-api/web",  # a nested package name: `billing-api%2Fweb` in the API
        "billing.acme.dev",
        (("production", 2), ("staging", 1)),
    ),
    FASTAPI_APP,
)

SMALL_REPOS = (FASTAPI_APP,)  # the tests' world: the demo's last repo alone

PEOPLE = (
    ("Maria Chen", "maria-chen"),
    ("Tobi Okafor", "tokafor"),
    ("Jonas Lindqvist", "jlindqvist"),
    ("Priya Raman", "priya-r"),
    ("Sam Whitfield", "samwhit"),
    ("Aiko Tanaka", "aiko-t"),
)

LOCK_HOLDERS = ("Jonas Lindqvist", "Priya Raman", "Sam Whitfield")
LOCK_MESSAGES = (
    "Manual lock: running data backfill, do not deploy",
    "Manual lock: investigating 502s",
    "Automatic deploy lock",
)

COMMIT_TEMPLATES = (
    "Fix {thing} when {cond}",
    "Add {thing} to {area}",
    "Refactor {area} {thing}",
    "Bump {dep} from {v1} to {v2}",
    "Speed up {area} query for {thing}",
    "Handle {cond} in {area}",
    "Log {thing} in {area}",
    "Remove unused {thing} from {area}",
    "Tidy up {area} tests",
    "Cache {thing} for {area}",
)
THINGS = (
    "discount codes",
    "tax rounding",
    "retry backoff",
    "pagination cursor",
    "currency formatting",
    "webhook signature check",
    "session timeout",
    "CSV export",
    "email receipts",
    "rate limiter",
    "health endpoint",
    "feature flags",
)
AREAS = ("checkout", "invoices", "admin", "search", "auth", "billing", "API", "worker", "reports")
CONDS = (
    "the cart is empty",
    "the customer has no address",
    "Stripe times out",
    "the token expired",
    "two requests race",
    "the locale is missing",
)
DEPS = (
    ("rack", "3.1.12", "3.1.14"),
    ("puma", "6.5.0", "6.6.0"),
    ("fastify", "5.2.1", "5.3.2"),
    ("pydantic", "2.10.6", "2.11.4"),
    ("sqlalchemy", "2.0.39", "2.0.41"),
    ("prisma", "6.5.0", "6.8.2"),
)

# (message, migration slug, destructive?) — commits that change the database schema.
MIGRATIONS = (
    ("Add discount_code to orders", "add_discount_code_to_orders", False),
    ("Add index on invoices.customer_id", "add_index_on_invoices_customer_id", False),
    ("Drop legacy coupons.code column", "drop_code_from_coupons", True),
    ("Rename table customers to accounts", "rename_customers_to_accounts", True),
    ("Add NOT NULL constraint to payments.currency", "payments_currency_not_null", True),
    ("Create audit_events table", "create_audit_events", False),
    ("Add due_date to invoices", "add_due_date_to_invoices", False),
)


def migration_file(stack: Stack, slug: str, stamp: str, rng: random.Random) -> str:
    """A migration file path in the stack's convention (`stamp` is YYYYMMDDHHMMSS)."""
    if stack is PYTHON:
        return f"alembic/versions/{rng.getrandbits(48):012x}_{slug}.py"
    if stack is NODE:
        return f"prisma/migrations/{stamp}_{slug}/migration.sql"
    return f"db/migrate/{stamp}_{slug}.rb"


def commit_message(rng: random.Random) -> str:
    template = rng.choice(COMMIT_TEMPLATES)
    dep, v1, v2 = rng.choice(DEPS)
    return template.format(
        thing=rng.choice(THINGS),
        area=rng.choice(AREAS),
        cond=rng.choice(CONDS),
        dep=dep,
        v1=v1,
        v2=v2,
    )
