"""Alembic, driven from code: `closeloop migrate`, the start-up upgrade and /readyz use it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory


def project_root() -> Path:
    """Where alembic.ini and migrations/ live: the source tree, else the working directory."""
    source_tree = Path(__file__).resolve().parents[2]
    if (source_tree / "alembic.ini").exists():
        return source_tree
    return Path.cwd()


def alembic_config(url: str | None = None) -> Config:
    root = project_root()
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    # The service has set up its own (JSON) logging; alembic.ini's would replace it.
    config.attributes["configure_logger"] = False
    if url is not None:
        # env.py reads it from here; '%' would be taken for interpolation by configparser.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@lru_cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
