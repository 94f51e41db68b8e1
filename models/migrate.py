"""Apply the Alembic migrations (`smsq migrate`). Safe to run again: Alembic skips applied revisions."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from models.db import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def schema_problem(url: str) -> str | None:
    """Why the database at `url` cannot be used as it is (never migrated, or behind), or None when current."""
    try:
        current = current_revision(url)
    except Exception as exc:  # unreachable, refused, a file that cannot be opened
        return f"cannot open the database: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    head = head_revision()
    if current is None:
        return "the database has no smsq tables yet: run `smsq migrate` first"
    if current != head:
        return f"the database is at migration {current}, this smsq needs {head}: run `smsq migrate` first"
    return None
