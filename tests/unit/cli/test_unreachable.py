from __future__ import annotations

import socket

import asyncpg
import redis.exceptions
import sqlalchemy.exc

from ccat_api.cli.unreachable import describe_unreachable


def test_a_refusal_raised_outside_a_database_or_redis_library_names_no_one() -> None:
    # Which library raised it is in the traceback; tests/integration/test_cli_unreachable.py
    # shows "the database" and "Redis" from real refusals.
    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")
    assert describe_unreachable(refused) == (
        "cannot reach a server: [Errno 111] Connect call failed ('127.0.0.1', 9)"
    )


def test_redis_sqlalchemy_and_postgres_refusals_read_as_one_line() -> None:
    assert describe_unreachable(redis.exceptions.ConnectionError("Error 111 connecting")) == (
        "cannot reach Redis: Error 111 connecting"
    )
    refused = asyncpg.InvalidPasswordError('password authentication failed for user "ccat"')
    assert describe_unreachable(refused) == (
        'cannot use the database: password authentication failed for user "ccat"'
    )
    wrapped = sqlalchemy.exc.OperationalError("SELECT 1", None, refused)
    assert describe_unreachable(wrapped) == describe_unreachable(refused)
    unresolved = socket.gaierror(-2, "Name or service not known")
    assert (
        describe_unreachable(unresolved)
        == "cannot reach a server: [Errno -2] Name or service not known"
    )


def test_a_group_of_one_failure_reads_as_it_and_anything_else_keeps_its_traceback() -> None:
    failure = redis.exceptions.ConnectionError("down")
    assert describe_unreachable(ExceptionGroup("workers", [failure, failure])) == (
        "cannot reach Redis: down"
    )
    assert describe_unreachable(ExceptionGroup("workers", [failure, ValueError()])) is None
    assert describe_unreachable(FileNotFoundError(2, "no such file")) is None
    assert describe_unreachable(KeyError("bug")) is None
