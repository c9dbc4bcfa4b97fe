"""Idempotent inserts that work on PostgreSQL and SQLite alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(session: Session, model: Any, conflict_columns: Sequence[str]) -> Insert:
    """``INSERT ... ON CONFLICT (cols) DO NOTHING`` for the session's dialect.

    ``model`` is a mapped class or a Table (a Table takes the faster Core executemany path).
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing(index_elements=conflict_columns)
    if dialect == "sqlite":
        return sqlite.insert(model).on_conflict_do_nothing(index_elements=conflict_columns)
    raise NotImplementedError(f"modscan supports PostgreSQL and SQLite, not {dialect}")
