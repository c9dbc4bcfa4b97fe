"""Which database errors are transient: the database, not the row, was the problem.

A transient error says nothing about the item being written, so it is retried with backoff
for as long as the operator allows (``MODSCAN_TRANSIENT_RETRY_S``) and never counts toward
an item's attempts. Everything else is the caller's to judge.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

# PostgreSQL SQLSTATEs (Appendix A of its manual) that mean "try again later".
TRANSIENT_SQLSTATES = frozenset(
    {
        "08000",  # connection_exception
        "08001",  # sqlclient_unable_to_establish_sqlconnection
        "08003",  # connection_does_not_exist
        "08004",  # sqlserver_rejected_establishment_of_sqlconnection
        "08006",  # connection_failure
        "08007",  # transaction_resolution_unknown
        "08P01",  # protocol_violation (a connection cut mid-message)
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "53300",  # too_many_connections
        "55P03",  # lock_not_available
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, or connections not allowed)
        "57014",  # query_canceled (statement_timeout, pg_cancel_backend)
    }
)
# SQLite: another process holds the write lock past the busy timeout.
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database is busy")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_transient_db_error(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a connection, lock or shutdown problem."""
    for error in _chain(exc):
        if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError):
            return True  # the pool gave up waiting for a connection, or lost one
        sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate in TRANSIENT_SQLSTATES:
            return True
        module = type(error).__module__
        name = type(error).__name__
        psycopg_connection_error = module.startswith("psycopg") and name in (
            "OperationalError",
            "InterfaceError",
        )
        if psycopg_connection_error and sqlstate is None:
            return True  # raised with no SQLSTATE when the server cannot be reached at all
        if module == "sqlite3" and name == "OperationalError":
            message = str(error).lower()
            if any(marker in message for marker in _SQLITE_TRANSIENT):
                return True
    return False
