"""Shared fixtures: a throwaway database per test session on a real PostgreSQL (the one $DATABASE_URL names,
else the embedded one), schema applied by the same code as `db init`, tables emptied between tests."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg2
import psycopg2.extensions
import pytest
from psycopg2 import sql

from chunking import db

TABLES = ("etl.chunk_attempts", "etl.chunks", "etl.staged_visits", "etl.runs", "conflict.conflict_visit_maps",
          "conflict.rejected_visits", "analytics.visits")


@pytest.fixture(scope="session")
def server_url() -> str:
    return os.environ.get("DATABASE_URL") or db.embedded_database_url()


@contextlib.contextmanager
def pipeline_database(server_url: str, prefix: str = "etl_test") -> Iterator[str]:
    """A throwaway database on the server with the pipeline's schema (applied as `db init` does); dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg2.extensions.make_dsn(server_url, dbname=name)
    conn = psycopg2.connect(url)
    db.migrate(conn)
    conn.close()
    try:
        yield url
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


def emptied(url: str) -> Iterator[psycopg2.extensions.connection]:
    """A connection to the pipeline database at ``url``, every table emptied first."""
    connection = psycopg2.connect(url)
    with connection.cursor() as cur:
        cur.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
            sql.SQL(", ").join(sql.SQL(t) for t in TABLES)))
    connection.commit()
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    with pipeline_database(server_url) as url:
        yield url


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg2.extensions.connection]:
    """A connection to an empty pipeline database."""
    yield from emptied(database_url)


@pytest.fixture
def aws(monkeypatch):
    """moto for every AWS API, with the region and dummy credentials a Lambda function always has."""
    from moto import mock_aws

    for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test",
                        "AWS_SECRET_ACCESS_KEY": "test", "AWS_SESSION_TOKEN": "test"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield
