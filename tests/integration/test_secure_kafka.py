"""Secured Kafka: TLS + SASL/SCRAM + ACLs, against a second development broker.

A module fixture starts a secure dev broker (``BrokerSettings.secure``) in a
temporary home on free ports and stops it at the end, whatever broker the other
integration tests use (``KAFKA_BOOTSTRAP_SERVERS``, testcontainers or the plaintext
dev broker): these tests always talk to their own. Jars are shared with the default
broker home (fetched once by Maven); the certificate and users are made fresh.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from memberstream.cli.devbroker import DevBroker
from memberstream.config import Settings
from memberstream.config.kafka import KafkaSecuritySettings
from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.streams.kafka_io import (
    KafkaAuthError,
    KafkaConnection,
    KafkaNotAuthorized,
    deny,
    produce_raw,
    read_json,
    wait_for_kafka,
)
from memberstream.streams.worker_process import WorkerProcess
from memberstream.testing import produce_records, raw_records, wait_processed

from .brokers import throwaway_broker
from .conftest import make_namespace

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in ("java", "keytool", "mvn")),
        reason="needs java, keytool and mvn on PATH",
    ),
]

WORKER = "memberstream"  # granted the app's ACLs
NO_TIERS = "no-tiers"  # the same ACLs, but denied WRITE on one namespace's member.tiers
REFUSED_WITHIN_S = 30.0


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevBroker]:
    """Started once for this module (about 10 s: certificate, users, JVM), stopped after it."""
    lines: list[str] = []
    dev = throwaway_broker(
        tmp_path_factory.mktemp("secure-broker"),
        lines.append,
        secure=True,
        app_users=[WORKER, NO_TIERS],
    )
    try:
        dev.start()
        yield dev
    finally:
        dev.stop(timeout=30)
    # what start printed names the password files, never a password
    for user in dev.users:
        assert dev.password_file(user).read_text().strip() not in "\n".join(lines)


def secure_namespace(dev: DevBroker, tmp_path: Path, user: str = WORKER) -> Settings:
    """A fresh namespace on the secure broker, topics created as ``user``."""
    return make_namespace(
        dev.bootstrap,
        tmp_path,
        kafka=dev.client_security(user),
        inference={"enabled": False},
    )


def _refused(conn: KafkaConnection) -> tuple[KafkaAuthError, float]:
    started = time.monotonic()
    with pytest.raises(KafkaAuthError) as raised:
        asyncio.run(wait_for_kafka(conn, timeout_s=60))
    return raised.value, time.monotonic() - started


def test_the_broker_files_and_what_start_printed(secure_broker: DevBroker) -> None:
    dev = secure_broker
    assert dev.status().secure
    for path in (dev.password_file("admin"), dev.password_file(WORKER), dev.keystore_file):
        assert path.stat().st_mode & 0o077 == 0, path  # owner only
    assert dev.server_properties_file.stat().st_mode & 0o077 == 0
    assert dev.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
    env = dev.client_env()
    assert env["MEMBERSTREAM_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["MEMBERSTREAM_KAFKA__SASL_PASSWORD_FILE"] == str(dev.password_file(WORKER))


def test_a_plaintext_client_is_refused_quickly_with_a_clear_error(
    secure_broker: DevBroker,
) -> None:
    error, took = _refused(KafkaConnection(secure_broker.bootstrap))
    assert took < REFUSED_WITHIN_S
    message = str(error)
    assert "speaks TLS" in message
    assert "MEMBERSTREAM_KAFKA__SECURITY_PROTOCOL=SASL_SSL" in message


def test_tls_without_sasl_is_refused_quickly_with_a_clear_error(
    secure_broker: DevBroker,
) -> None:
    security = KafkaSecuritySettings(security_protocol="SSL", ssl_cafile=secure_broker.ca_file)
    error, took = _refused(KafkaConnection(secure_broker.bootstrap, security))
    assert took < REFUSED_WITHIN_S
    assert "wants SASL authentication" in str(error)


def test_a_wrong_password_is_refused_quickly_with_a_clear_error(
    secure_broker: DevBroker,
) -> None:
    security = secure_broker.client_security(WORKER).model_copy(
        update={"sasl_password": SecretStr("not-the-password"), "sasl_password_file": None}
    )
    error, took = _refused(KafkaConnection(secure_broker.bootstrap, security))
    assert took < REFUSED_WITHIN_S
    message = str(error)
    assert message.startswith("authentication failed")
    assert f"SASL user '{WORKER}'" in message
    assert "MEMBERSTREAM_KAFKA__SASL_PASSWORD" in message
    assert "not-the-password" not in message


def test_an_unknown_ca_is_refused_with_a_clear_error(secure_broker: DevBroker) -> None:
    security = secure_broker.client_security(WORKER).model_copy(update={"ssl_cafile": None})
    error, took = _refused(KafkaConnection(secure_broker.bootstrap, security))
    assert took < REFUSED_WITHIN_S
    assert "did not verify" in str(error) and "MEMBERSTREAM_KAFKA__SSL_CAFILE" in str(error)


def test_a_worker_with_credentials_processes_a_stream_end_to_end(
    secure_broker: DevBroker, tmp_path: Path
) -> None:
    settings = secure_namespace(secure_broker, tmp_path)
    config = WorkloadConfig(seed=21, members=40, days=60)
    events = list(itertools.islice(SyntheticWorkload(config).events(), 600))
    produce_records(settings, raw_records(settings, events))

    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        wait_processed(settings, worker, timeout_s=90)
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail()

    profiles = asyncio.run(read_json(settings, settings.topics.member_profiles))
    assert {p["member_id"] for p in profiles} == {e.member_id for e in events}
    assert asyncio.run(read_json(settings, settings.topics.dlq)) == []
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert secure_broker.password_file(WORKER).read_text().strip() not in log


def test_a_principal_without_write_on_an_output_topic_gets_a_clear_error(
    secure_broker: DevBroker, tmp_path: Path
) -> None:
    settings = secure_namespace(secure_broker, tmp_path, user=NO_TIERS)
    tiers = settings.topics.member_tiers
    secure_broker.set_acls(deny(f"User:{NO_TIERS}", "topic", tiers, "write"))

    # a plain producer under that principal: a clear error at once, naming the topic
    started = time.monotonic()
    with pytest.raises(KafkaNotAuthorized) as raised:
        _produce_until_denied(settings, tiers)
    assert time.monotonic() - started < REFUSED_WITHIN_S
    message = str(raised.value)
    assert f"User:{NO_TIERS} is not authorized to write to topic {tiers}" in message
    # the other outputs stay writable
    assert asyncio.run(produce_raw(settings, settings.topics.member_profiles, [(b"k", b"{}")]))

    # the worker: its first tier update is refused; it must exit, not hang
    events = [e for e in _purchases(400)]
    produce_records(settings, raw_records(settings, events))
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    deadline = time.monotonic() + 90
    try:
        while worker.running and time.monotonic() < deadline:
            time.sleep(0.5)
        still_running = worker.running
    finally:
        code = worker.stop(timeout_s=20)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert not still_running, f"worker still running after 90 s:\n{worker.log_tail(60)}"
    assert code not in (0, None), worker.log_tail(60)
    assert any(tiers in line and "not authorized" in line.lower() for line in log.splitlines()), (
        worker.log_tail(60)
    )


def _produce_until_denied(settings: Settings, topic: str) -> None:
    """Produce to ``topic``; ACL changes reach the broker's authorizer through the
    metadata log, so a send just after ``set_acls`` may still pass: retry briefly."""
    for _ in range(20):
        asyncio.run(produce_raw(settings, topic, [(b"k", b"{}")]))
        time.sleep(0.25)


def _purchases(n: int) -> list:
    config = WorkloadConfig(seed=22, members=30, days=60)
    return list(itertools.islice(SyntheticWorkload(config).events(kinds={"purchase"}), n))


def test_a_topic_the_principal_may_not_describe_is_an_error_not_empty(
    secure_broker: DevBroker, tmp_path: Path
) -> None:
    settings = secure_namespace(secure_broker, tmp_path, user=NO_TIERS)
    dlq = settings.topics.dlq
    secure_broker.set_acls(deny(f"User:{NO_TIERS}", "topic", dlq, "describe", "read"))
    deadline = time.monotonic() + 10
    while True:  # the ACL reaches the broker's authorizer through the metadata log
        try:
            asyncio.run(read_json(settings, dlq, idle_timeout_s=1))
        except KafkaNotAuthorized as exc:
            assert f"User:{NO_TIERS} is not authorized to describe topic {dlq}" in str(exc)
            break
        assert time.monotonic() < deadline, "reading a forbidden topic still gave no error"
        time.sleep(0.25)
    # the worker's own principal still reads it (empty, not an error)
    worker = settings.model_copy(update={"kafka": secure_broker.client_security(WORKER)})
    assert asyncio.run(read_json(worker, dlq, idle_timeout_s=1)) == []
