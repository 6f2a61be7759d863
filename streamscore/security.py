"""Transport security from configuration: Kafka SASL/SSL for every client, and PostgreSQL SSL.

Secrets come from the environment (pydantic-settings) and are only ever handed to the client libraries;
nothing here writes them anywhere. One function per client family, so each one's parameter names are in
one place and unit-tested.
"""

from __future__ import annotations

import ssl
from typing import Any

from streamscore.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile), str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None
        )
    return context


def kafka_python_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for kafka-python's producer, consumer and admin client (replay, topics, tests)."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options.update(
            ssl_check_hostname=True,
            ssl_cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
            ssl_certfile=str(settings.kafka_ssl_certfile) if settings.kafka_ssl_certfile else None,
            ssl_keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        )
    if protocol.startswith("SASL"):
        assert settings.kafka_sasl_password is not None  # enforced by Settings
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    return {k: v for k, v in options.items() if v is not None}


def postgres_query(settings: Settings) -> dict[str, str]:
    """libpq SSL parameters added to every PostgreSQL URL."""
    query: dict[str, str] = {}
    if settings.pg_sslmode:
        query["sslmode"] = settings.pg_sslmode
    if settings.pg_sslrootcert:
        query["sslrootcert"] = str(settings.pg_sslrootcert)
    return query
