"""Security settings pass through to every client; secrets come from the environment and stay secret."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from streamscore.db.connection import admin_url, reader_url, writer_url
from streamscore.security import kafka_python_options, postgres_query
from streamscore.settings import Settings
from worker.runtime import faust_credentials


def make(**env: object) -> Settings:
    return Settings(_env_file=None, **env)


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    settings = make()
    assert kafka_python_options(settings) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings) is None and postgres_query(settings) == {}


def test_sasl_ssl_reaches_kafka_python_and_faust(tmp_path: Path) -> None:
    settings = make(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="s3cret",
    )
    options = kafka_python_options(settings)
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (
        options["sasl_plain_username"] == "svc"
        and options["sasl_plain_password"] == "s3cret"
        and options["ssl_check_hostname"] is True
    )
    credentials = faust_credentials(settings)
    assert (
        credentials.username == "svc"
        and credentials.password == "s3cret"
        and isinstance(credentials.ssl_context, ssl.SSLContext)
    )
    assert "s3cret" not in repr(settings)  # SecretStr: never printed or logged


def test_sasl_without_credentials_is_a_configuration_error() -> None:
    with pytest.raises(ValidationError, match="SASL_USERNAME"):
        make(kafka_security_protocol="SASL_PLAINTEXT")


def test_postgres_ssl_is_added_to_every_role_url() -> None:
    settings = make(
        pg_sslmode="verify-full",
        pg_sslrootcert="/etc/ssl/pg-ca.pem",
        database_url="postgres://admin:pw@db.example:5432/app",
        writer_database_url="postgresql://w:pw@db.example/app",
        reader_database_url="postgresql://r:pw@db.example/app?sslmode=require",
    )
    assert "sslmode=verify-full" in admin_url(settings) and "sslrootcert=%2Fetc%2Fssl%2Fpg-ca.pem" in writer_url(
        settings
    )
    assert "sslmode=require" in reader_url(settings)  # a URL's own choice wins over the default
    assert admin_url(make()).endswith("/streamscore")  # nothing added when not configured


def test_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSCORE_KAFKA_SASL_PASSWORD", "from-env")
    monkeypatch.setenv("STREAMSCORE_WRITER_PASSWORD", "pw-env")
    settings = make()
    assert (
        settings.kafka_sasl_password.get_secret_value() == "from-env"
        and settings.writer_password.get_secret_value() == "pw-env"
    )
