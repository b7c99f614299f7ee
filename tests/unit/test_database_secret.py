"""The database secret (Secrets Manager, RDS format) becomes a connection URL; settings fill its gaps."""

from __future__ import annotations

import json

import boto3
import pytest

from chunking.db import database_url_from_secret
from chunking.errors import ConfigError


def _secret(value):
    return boto3.client("secretsmanager").create_secret(Name="db", SecretString=json.dumps(value))["ARN"]


def test_full_rds_secret(aws):
    arn = _secret({"username": "etl", "password": "p@ss/word", "host": "db.internal", "port": 5433,
                   "dbname": "evv"})
    assert database_url_from_secret(arn) == "postgresql://etl:p%40ss/word@db.internal:5433/evv"


def test_rds_managed_master_secret_is_completed_by_settings(aws):
    # a secret RDS manages for its master user holds only username and password
    arn = _secret({"username": "postgres", "password": "s3cret"})
    url = database_url_from_secret(arn, {"host": "evv.cluster.local", "port": None, "dbname": "evv"})
    assert url == "postgresql://postgres:s3cret@evv.cluster.local:5432/evv"


def test_secret_without_a_host_anywhere_is_a_config_error_that_shows_no_password(aws):
    arn = _secret({"username": "postgres", "password": "s3cret"})
    with pytest.raises(ConfigError, match="host") as caught:
        database_url_from_secret(arn)
    assert "s3cret" not in str(caught.value)
