"""Kafka connection security: settings validation, what clients get, secrets kept secret,
the connection object every kafka_io helper takes, ACL requests and error messages."""

from __future__ import annotations

import json
import os
import ssl
from pathlib import Path

import faust
import pytest
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError
from pydantic import SecretStr, ValidationError

from memberstream.config import CONFIG_ENV, Settings, load_settings
from memberstream.config.kafka import KafkaSecuritySettings
from memberstream.streams.kafka_io import (
    Acl,
    KafkaAuthError,
    KafkaConnection,
    KafkaNotAuthorized,
    KafkaUnavailable,
    app_acls,
    deny,
    grant,
    not_authorized,
)
from memberstream.streams.worker_process import settings_env

MASK = "**********"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("MEMBERSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)


@pytest.fixture
def ca_file() -> Path:
    """Any PEM bundle will do for building a context: the system's CAs."""
    path = ssl.get_default_verify_paths().cafile
    if path is None or not Path(path).is_file():
        pytest.skip("no system CA bundle")
    return Path(path)


def sasl_ssl(ca_file: Path, **changes: object) -> KafkaSecuritySettings:
    fields: dict[str, object] = {
        "security_protocol": "SASL_SSL",
        "sasl_username": "worker",
        "sasl_password": "s3cret-pw",
        "ssl_cafile": ca_file,
        **changes,
    }
    return KafkaSecuritySettings(**fields)  # type: ignore[arg-type]


# --- validation -------------------------------------------------------------------------------


def test_plaintext_is_the_default_and_needs_nothing() -> None:
    s = KafkaSecuritySettings()
    assert s.security_protocol == "PLAINTEXT"
    assert not s.uses_sasl and not s.uses_ssl
    assert s.client_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert s.faust_credentials() is None


def test_sasl_without_username_is_refused() -> None:
    with pytest.raises(ValidationError, match="SASL_SSL needs sasl_username"):
        KafkaSecuritySettings(security_protocol="SASL_SSL", sasl_password="x")


def test_sasl_without_password_is_refused() -> None:
    with pytest.raises(ValidationError, match="needs sasl_password or sasl_password_file"):
        KafkaSecuritySettings(security_protocol="SASL_PLAINTEXT", sasl_username="u")


def test_client_certificate_without_key_is_refused(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("x")
    with pytest.raises(ValidationError, match="ssl_certfile and ssl_keyfile go together"):
        KafkaSecuritySettings(security_protocol="SSL", ssl_certfile=cert)
    with pytest.raises(ValidationError, match="ssl_certfile and ssl_keyfile go together"):
        KafkaSecuritySettings(security_protocol="SSL", ssl_keyfile=cert)


def test_missing_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="ssl_cafile: no such file"):
        KafkaSecuritySettings(security_protocol="SSL", ssl_cafile=tmp_path / "nope.pem")
    with pytest.raises(ValidationError, match="sasl_password_file: no such file"):
        KafkaSecuritySettings(
            security_protocol="SASL_SSL",
            sasl_username="u",
            sasl_password_file=tmp_path / "nope",
        )


def test_unknown_protocol_or_mechanism_is_refused() -> None:
    with pytest.raises(ValidationError):
        KafkaSecuritySettings(security_protocol="TLS")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        KafkaSecuritySettings(sasl_mechanism="GSSAPI")  # type: ignore[arg-type]


# --- what clients get ---------------------------------------------------------------------------


def test_client_kwargs_for_sasl_ssl(ca_file: Path) -> None:
    kwargs = sasl_ssl(ca_file, sasl_mechanism="SCRAM-SHA-256").client_kwargs()
    context = kwargs.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert kwargs == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "worker",
        "sasl_plain_password": "s3cret-pw",
    }


def test_client_kwargs_for_sasl_plaintext_have_no_tls() -> None:
    kwargs = KafkaSecuritySettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password="p",
    ).client_kwargs()
    assert "ssl_context" not in kwargs
    assert kwargs["sasl_mechanism"] == "PLAIN"


def test_without_hostname_check_the_chain_is_still_verified(ca_file: Path) -> None:
    context = sasl_ssl(ca_file, ssl_check_hostname=False).ssl_context()
    assert context is not None
    assert not context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_password_file_is_read_and_stripped(tmp_path: Path, ca_file: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-a-file\n")
    s = sasl_ssl(ca_file, sasl_password=None, sasl_password_file=secret)
    assert s.password() == "from-a-file"
    assert s.client_kwargs()["sasl_plain_password"] == "from-a-file"
    secret.write_text("rotated\n")  # read when a client is built, not once
    assert s.client_kwargs()["sasl_plain_password"] == "rotated"


def test_faust_credentials(ca_file: Path) -> None:
    creds = sasl_ssl(ca_file).faust_credentials()
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == "SASL_SSL"
    assert creds.mechanism.value == "SCRAM-SHA-512"
    assert (creds.username, creds.password) == ("worker", "s3cret-pw")
    tls = KafkaSecuritySettings(security_protocol="SSL", ssl_cafile=ca_file).faust_credentials()
    assert isinstance(tls, faust.SSLCredentials)


# --- secrets stay secret ------------------------------------------------------------------------


def test_secrets_are_masked_in_describe(ca_file: Path) -> None:
    settings = Settings(kafka=sasl_ssl(ca_file, ssl_key_password="key-pw"))
    described = settings.describe()
    assert described["kafka"]["sasl_password"] == MASK
    assert described["kafka"]["ssl_key_password"] == MASK
    assert described["kafka"]["sasl_username"] == "worker"
    text = json.dumps(described)
    assert "s3cret-pw" not in text and "key-pw" not in text
    assert "s3cret-pw" not in repr(settings) and "s3cret-pw" not in str(settings.kafka)


def test_security_from_env_vars(monkeypatch: pytest.MonkeyPatch, ca_file: Path) -> None:
    monkeypatch.setenv("MEMBERSTREAM_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("MEMBERSTREAM_KAFKA__SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("MEMBERSTREAM_KAFKA__SASL_USERNAME", "env-user")
    monkeypatch.setenv("MEMBERSTREAM_KAFKA__SASL_PASSWORD", "env-pw")
    monkeypatch.setenv("MEMBERSTREAM_KAFKA__SSL_CAFILE", str(ca_file))
    settings = load_settings()
    assert settings.kafka.sasl_username == "env-user"
    assert settings.kafka.password() == "env-pw"
    kwargs = settings.kafka_client_kwargs()
    assert kwargs["bootstrap_servers"] == "127.0.0.1:9092"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-256"


def test_settings_env_passes_secrets_through_to_the_child(
    monkeypatch: pytest.MonkeyPatch, ca_file: Path
) -> None:
    settings = Settings(kafka=sasl_ssl(ca_file, ssl_key_password="key-pw"), app_id="child")
    env = settings_env(settings)
    assert MASK not in env["MEMBERSTREAM_KAFKA"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    child = Settings()
    assert child.kafka.password() == "s3cret-pw"
    assert child.kafka.ssl_key_password == SecretStr("key-pw")
    assert child.kafka == settings.kafka
    assert child.app_id == "child"
    assert child.describe()["kafka"]["sasl_password"] == MASK


# --- the connection every helper takes ----------------------------------------------------------


def test_kafka_connection_from_settings(ca_file: Path) -> None:
    settings = Settings(kafka_bootstrap_servers="k1:9093, [::1]:9094,k3", kafka=sasl_ssl(ca_file))
    conn = KafkaConnection.of(settings)
    assert KafkaConnection.of(conn) is conn
    assert conn.hosts() == [("k1", 9093), ("::1", 9094), ("k3", 9092)]
    assert conn.principal == "User:worker"
    assert conn.describe() == "k1:9093, [::1]:9094,k3 (SASL_SSL, SCRAM-SHA-512 as worker)"
    kwargs = conn.client_kwargs()
    assert kwargs["bootstrap_servers"] == settings.kafka_bootstrap_servers
    assert kwargs["sasl_plain_username"] == "worker"
    assert KafkaConnection("h:1").principal == "User:ANONYMOUS"


def test_auth_errors_are_kafka_unavailable_for_callers_that_catch_that() -> None:
    assert issubclass(KafkaAuthError, KafkaUnavailable)
    assert issubclass(KafkaNotAuthorized, KafkaAuthError)


def test_not_authorized_names_principal_action_and_topic(ca_file: Path) -> None:
    conn = KafkaConnection("k:9093", sasl_ssl(ca_file))
    error = not_authorized(conn, "write (WRITE)", TopicAuthorizationFailedError("member.tiers"))
    assert str(error).startswith(
        "User:worker is not authorized to write (WRITE) on topic member.tiers on Kafka at k:9093"
    )
    assert "TopicAuthorizationFailedError" in str(error)
    group = not_authorized(conn, "describe consumer group g", GroupAuthorizationFailedError())
    assert "not authorized to describe consumer group g" in str(group)


# --- ACLs ---------------------------------------------------------------------------------------


def test_grant_and_deny_build_acl_entries() -> None:
    allowed = grant("User:w", "topic", "member.", "read", "write", prefixed=True)
    assert allowed == [
        Acl("User:w", "read", "topic", "member.", "prefixed"),
        Acl("User:w", "write", "topic", "member.", "prefixed"),
    ]
    (denied,) = deny("User:w", "topic", "member.tiers", "write")
    assert (denied.pattern, denied.permission) == ("literal", "deny")


def test_acl_request_uses_kafka_codes() -> None:
    (acl,) = deny("User:w", "topic", "member.tiers", "write")
    struct = acl.request().build(_create_acls_v1())
    ((resource, name, pattern, principal, host, operation, permission),) = struct.creations
    # TOPIC=2, LITERAL=3, WRITE=4, DENY=2 (org.apache.kafka.common.acl / resource enums)
    assert (resource, name, pattern, principal, host) == (2, "member.tiers", 3, "User:w", "*")
    assert (operation, permission) == (4, 2)
    (group,) = grant("User:w", "group", "memberstream", "read", prefixed=True)
    assert group.request().build(_create_acls_v1()).creations[0][:3] == (3, "memberstream", 4)


def _create_acls_v1() -> type:
    from aiokafka.protocol.admin import CreateAclsRequest_v1

    return CreateAclsRequest_v1


def test_app_acls_cover_topics_and_groups_by_prefix() -> None:
    acls = app_acls("User:app", ["events.", "memberstream"], ["memberstream"])
    topic_ops = {(a.name, a.operation) for a in acls if a.resource_type == "topic"}
    for prefix in ("events.", "memberstream"):
        for op in ("read", "write", "create", "describe"):
            assert (prefix, op) in topic_ops
    assert {a.operation for a in acls if a.resource_type == "group"} >= {"read", "describe"}
    assert all(a.pattern == "prefixed" and a.permission == "allow" for a in acls)
