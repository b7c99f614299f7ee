"""The database secret (Secrets Manager, RDS format) becomes a libpq connection string; settings fill its gaps.
Whatever a value holds, libpq reads it back whole."""

from __future__ import annotations

import json

import boto3
import pytest
from psycopg2.extensions import parse_dsn

from chunking.db import database_url_from_secret
from chunking.errors import ConfigError


def _secret(value):
    return boto3.client("secretsmanager").create_secret(Name="db", SecretString=json.dumps(value))["ARN"]


def test_full_rds_secret(aws):
    arn = _secret({"username": "etl", "password": "p@ss/word", "host": "db.internal", "port": 5433,
                   "dbname": "evv"})
    assert parse_dsn(database_url_from_secret(arn)) == {
        "user": "etl", "password": "p@ss/word", "host": "db.internal", "port": "5433", "dbname": "evv"}


@pytest.mark.parametrize("password", ["a/b", "p@ss:w/rd?#%", "with space", "quote'and\\backslash", "ü=é&x"])
def test_any_password_reaches_libpq_whole(aws, password):
    arn = _secret({"username": "etl", "password": password, "host": "db.internal"})
    assert parse_dsn(database_url_from_secret(arn))["password"] == password


def test_rds_managed_master_secret_is_completed_by_settings(aws):
    # a secret RDS manages for its master user holds only username and password
    arn = _secret({"username": "postgres", "password": "s3cret"})
    url = database_url_from_secret(arn, {"host": "evv.cluster.local", "port": None, "dbname": "evv"})
    assert parse_dsn(url) == {"user": "postgres", "password": "s3cret", "host": "evv.cluster.local", "port": "5432",
                              "dbname": "evv"}


def test_secret_without_a_host_anywhere_is_a_config_error_that_shows_no_password(aws):
    arn = _secret({"username": "postgres", "password": "s3cret"})
    with pytest.raises(ConfigError, match="host") as caught:
        database_url_from_secret(arn)
    assert "s3cret" not in str(caught.value)
