"""Unit tests for the development broker manager; no JVM, no Maven."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from memberstream.cli.commands.broker import broker
from memberstream.cli.devbroker import (
    BrokerError,
    DevBroker,
    SecureFiles,
    log4j_properties,
    parse_properties,
    pom_xml,
    scram_arguments,
    server_properties,
)
from memberstream.config import BrokerSettings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def settings(tmp_path: Path) -> BrokerSettings:
    return BrokerSettings(home=tmp_path / "home", port=_free_port(), controller_port=_free_port())


def test_server_properties_kraft_single_node(tmp_path: Path) -> None:
    s = BrokerSettings(home=tmp_path, host="127.0.0.1", port=29092, controller_port=29093)
    props = parse_properties(server_properties(s, tmp_path / "data"))

    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert "CONTROLLER:PLAINTEXT" in props["listener.security.protocol.map"]
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["log.cleaner.enable"] == "true"
    assert props["log.segment.bytes"] == "104857600"
    # memberstream and faust create every topic explicitly (CreateTopics).
    assert props["auto.create.topics.enable"] == "false"
    # plaintext: no TLS, SASL or authorizer
    assert "sasl.enabled.mechanisms" not in props and "authorizer.class.name" not in props


def test_pom_names_kafka_and_logging_binding() -> None:
    pom = pom_xml(BrokerSettings(kafka_version="3.9.2", scala_version="2.13"))
    assert "<artifactId>kafka_2.13</artifactId>" in pom
    assert "<version>3.9.2</version>" in pom
    assert "<artifactId>slf4j-reload4j</artifactId>" in pom
    assert "<packaging>pom</packaging>" in pom


def test_log4j_to_console_with_quiet_request_logger() -> None:
    props = parse_properties(log4j_properties())
    assert props["log4j.rootLogger"] == "INFO, stdout"
    assert props["log4j.appender.stdout"] == "org.apache.log4j.ConsoleAppender"
    assert props["log4j.logger.kafka.request.logger"] == "WARN"
    assert props["log4j.logger.state.change.logger"] == "WARN"


def test_layout_and_jars_home(tmp_path: Path) -> None:
    s = BrokerSettings(home=tmp_path / "h", kafka_version="3.9.2")
    dev = DevBroker(s, echo=lambda _: None, jars_home=tmp_path / "shared")
    assert dev.libs_dir == tmp_path / "shared" / "kafka-3.9.2" / "libs"
    assert dev.data_dir == tmp_path / "h" / "data"
    assert dev.log_file == tmp_path / "h" / "logs" / "server.log"
    assert DevBroker(s, echo=lambda _: None).libs_dir == tmp_path / "h" / "kafka-3.9.2" / "libs"


def test_status_stopped_without_pid_file(settings: BrokerSettings) -> None:
    st = DevBroker(settings, echo=lambda _: None).status()
    assert not st.running
    assert st.pid is None
    assert st.bootstrap == f"127.0.0.1:{settings.port}"


def test_status_removes_pid_file_of_dead_process(settings: BrokerSettings) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    dev = DevBroker(settings, echo=lambda _: None)
    dev.home.mkdir(parents=True)
    dev.pid_file.write_text(f"{dead.pid}\n")

    st = dev.status()

    assert not st.running
    assert st.pid is None
    assert not dev.pid_file.exists()


def test_status_ignores_live_process_that_is_not_the_broker(settings: BrokerSettings) -> None:
    # A recycled pid: alive, but not this home's kafka.Kafka.
    dev = DevBroker(settings, echo=lambda _: None)
    dev.home.mkdir(parents=True)
    dev.pid_file.write_text(str(os.getpid()))

    assert not dev.status().running
    assert not dev.pid_file.exists()


def test_status_garbage_pid_file(settings: BrokerSettings) -> None:
    dev = DevBroker(settings, echo=lambda _: None)
    dev.home.mkdir(parents=True)
    dev.pid_file.write_text("not a pid")
    assert not dev.status().running
    assert not dev.pid_file.exists()


def test_stop_when_not_running(settings: BrokerSettings) -> None:
    assert DevBroker(settings, echo=lambda _: None).stop() is False


def test_start_refuses_port_in_use(settings: BrokerSettings, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        s = settings.model_copy(update={"port": port})
        # jars_home is empty: the port check must come before any Maven run.
        dev = DevBroker(s, echo=lambda _: None, jars_home=tmp_path / "nojars")
        with pytest.raises(BrokerError, match=rf"port {port} already in use") as raised:
            dev.start()
    assert "MEMBERSTREAM_BROKER__PORT" in str(raised.value)
    assert not (tmp_path / "nojars").exists()
    assert not dev.pid_file.exists()


def test_start_refuses_controller_port_bound_not_listening(settings: BrokerSettings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # bound only: a connect would not notice it
        port = taken.getsockname()[1]
        s = settings.model_copy(update={"controller_port": port})
        with pytest.raises(BrokerError, match=rf"controller port {port} already in use"):
            DevBroker(s, echo=lambda _: None).start()


def test_fetch_jars_skipped_when_complete(
    settings: BrokerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = DevBroker(settings, echo=lambda _: None)
    dev.libs_dir.mkdir(parents=True)
    (dev.libs_dir / "kafka_2.13-3.9.2.jar").write_bytes(b"")
    (dev.libs_dir / ".memberstream-complete").write_text(dev._marker_text())
    monkeypatch.setenv("PATH", "")  # no mvn: it must not be needed
    assert dev.fetch_jars() == dev.libs_dir


def test_fetch_jars_without_maven(
    settings: BrokerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(BrokerError, match="mvn not found: install Maven"):
        DevBroker(settings, echo=lambda _: None).fetch_jars()


def test_cli_status_stopped_exit_3(
    settings: BrokerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMBERSTREAM_BROKER__HOME", str(settings.home))
    monkeypatch.setenv("MEMBERSTREAM_BROKER__PORT", str(settings.port))
    result = CliRunner().invoke(broker, ["status"])
    assert result.exit_code == 3, result.output
    assert "stopped" in result.output
    assert f"127.0.0.1:{settings.port}" in result.output


def test_cli_start_port_conflict_exit_1(
    settings: BrokerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("MEMBERSTREAM_BROKER__HOME", str(settings.home))
        monkeypatch.setenv("MEMBERSTREAM_BROKER__PORT", str(port))
        result = CliRunner().invoke(broker, ["start"])
    assert result.exit_code == 1
    assert f"port {port} already in use" in result.output
    assert "Traceback" not in result.output


_FAKE_MVN = """#!/bin/sh
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}";; esac
done
echo "[INFO] Scanning for projects..."
echo "Downloading from central: https://repo/x/kafka_2.13-3.9.2.pom"
echo "Downloaded from central: https://repo/x/kafka_2.13-3.9.2.pom (4 kB at 9 kB/s)"
echo "Downloaded from central: https://repo/x/kafka_2.13-3.9.2.jar (6.2 MB at 3 MB/s)"
if [ -n "$FAKE_MVN_FAIL" ]; then echo "[ERROR] Could not resolve dependencies"; exit 1; fi
touch "$out/kafka_2.13-3.9.2.jar" "$out/kafka-clients-3.9.2.jar"
echo "[INFO] BUILD SUCCESS"
"""


@pytest.fixture
def fake_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(_FAKE_MVN)
    mvn.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    return mvn


def test_fetch_jars_streams_progress_and_writes_marker(
    settings: BrokerSettings, fake_mvn: Path
) -> None:
    lines: list[str] = []
    dev = DevBroker(settings, echo=lines.append)
    libs = dev.fetch_jars()
    assert (libs / "kafka_2.13-3.9.2.jar").exists()
    assert dev.jars_complete()
    assert (dev.kafka_dir / "pom.xml").exists()
    assert "  downloaded kafka_2.13-3.9.2.jar (6.2 MB at 3 MB/s)" in lines
    assert not any("Scanning" in line or ".pom" in line for line in lines)
    assert lines[-1] == "fetched 2 jars (2 files downloaded)"

    fake_mvn.write_text("#!/bin/sh\nexit 99\n")  # a second call must not run Maven
    assert dev.fetch_jars() == libs


def test_fetch_jars_failure_shows_maven_output(
    settings: BrokerSettings, fake_mvn: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MVN_FAIL", "1")
    dev = DevBroker(settings, echo=lambda _: None)
    with pytest.raises(BrokerError, match="Maven failed") as raised:
        dev.fetch_jars()
    assert "Could not resolve dependencies" in str(raised.value)
    assert not dev.jars_complete()


# --- secure mode ------------------------------------------------------------------------------


def _secure_files(tmp_path: Path) -> SecureFiles:
    return SecureFiles(
        keystore=tmp_path / "tls" / "broker.p12",
        truststore=tmp_path / "tls" / "truststore.p12",
        store_password="store-pw",
        admin_password="admin-pw",
    )


def test_server_properties_secure(tmp_path: Path) -> None:
    s = BrokerSettings(home=tmp_path, port=29092, controller_port=29093, secure=True)
    props = parse_properties(server_properties(s, tmp_path / "data", _secure_files(tmp_path)))

    assert props["listeners"] == "SASL_SSL://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:29092"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512,SCRAM-SHA-256"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    for mechanism in ("scram-sha-512", "scram-sha-256"):
        jaas = props[f"listener.name.sasl_ssl.{mechanism}.sasl.jaas.config"]
        assert jaas.startswith("org.apache.kafka.common.security.scram.ScramLoginModule required")
        assert 'username="admin" password="admin-pw";' in jaas
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PKCS12"
    assert props["ssl.keystore.location"] == str(tmp_path / "tls" / "broker.p12")
    assert props["ssl.truststore.location"] == str(tmp_path / "tls" / "truststore.p12")
    assert props["ssl.keystore.password"] == props["ssl.key.password"] == "store-pw"
    assert props["ssl.client.auth"] == "none"
    assert props["ssl.endpoint.identification.algorithm"] == "https"
    assert props["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert props["super.users"] == "User:admin;User:ANONYMOUS"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["auto.create.topics.enable"] == "false"
    assert props["controller.listener.names"] == "CONTROLLER"


def test_server_properties_secure_needs_its_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs its SecureFiles"):
        server_properties(BrokerSettings(home=tmp_path, secure=True), tmp_path / "data")


def test_scram_users_for_every_mechanism() -> None:
    assert scram_arguments({"admin": "a1", "memberstream": "m1"}) == [
        "--add-scram", "SCRAM-SHA-512=[name=admin,password=a1]",
        "--add-scram", "SCRAM-SHA-256=[name=admin,password=a1]",
        "--add-scram", "SCRAM-SHA-512=[name=memberstream,password=m1]",
        "--add-scram", "SCRAM-SHA-256=[name=memberstream,password=m1]",
    ]  # fmt: skip


def test_secure_layout_users_and_client_settings(settings: BrokerSettings) -> None:
    s = settings.model_copy(update={"secure": True, "app_users": ["memberstream", "reader"]})
    dev = DevBroker(s, echo=lambda _: None)
    assert dev.users == ["admin", "memberstream", "reader"]
    assert dev.app_user == "memberstream"
    assert dev.ca_file == dev.home / "tls" / "ca.pem"
    assert dev.password_file("reader") == dev.home / "secrets" / "reader.password"

    files = dev._secure_files()  # passwords generated once, kept owner-only
    assert files.admin_password == dev._secure_files().admin_password
    for path in (dev.password_file("admin"), dev.store_password_file):
        assert path.stat().st_mode & 0o777 == 0o600
    assert dev.secrets_dir.stat().st_mode & 0o777 == 0o700

    dev.password_file("memberstream").parent.mkdir(parents=True, exist_ok=True)
    dev._secret(dev.password_file("memberstream"))
    dev.ca_file.parent.mkdir(parents=True)
    dev.ca_file.write_text("-----BEGIN CERTIFICATE-----\n")
    security = dev.client_security()
    assert security.security_protocol == "SASL_SSL"
    assert security.sasl_username == "memberstream"
    assert security.sasl_password_file == dev.password_file("memberstream")
    assert security.ssl_cafile == dev.ca_file

    env = dev.client_env("memberstream")
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{s.port}"
    assert env["MEMBERSTREAM_KAFKA__SASL_USERNAME"] == "memberstream"
    password = dev.password_file("memberstream").read_text().strip()
    assert password not in "".join(env.values())


def test_plaintext_broker_client_settings(settings: BrokerSettings) -> None:
    dev = DevBroker(settings, echo=lambda _: None)
    assert dev.client_security().security_protocol == "PLAINTEXT"
    assert dev.client_env() == {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{settings.port}"}
    with pytest.raises(BrokerError, match="ACLs need a secure broker"):
        dev.set_acls([])


def test_secure_start_refuses_data_formatted_without_scram_users(
    settings: BrokerSettings,
) -> None:
    dev = DevBroker(settings.model_copy(update={"secure": True}), echo=lambda _: None)
    dev.data_dir.mkdir(parents=True)
    (dev.data_dir / "meta.properties").write_text("cluster.id=x\n")
    with pytest.raises(BrokerError, match="formatted without the SCRAM users") as raised:
        dev._check_scram_users()
    assert "--fresh" in str(raised.value)
    (dev.data_dir / ".memberstream-scram-users").write_text("admin\nmemberstream\n")
    dev._check_scram_users()


def test_start_refuses_a_running_broker_of_the_other_mode(settings: BrokerSettings) -> None:
    plain = DevBroker(settings, echo=lambda _: None)
    plain._write_config()
    secure = DevBroker(settings.model_copy(update={"secure": True}), echo=lambda _: None)
    with pytest.raises(BrokerError, match="a plaintext broker is already running") as raised:
        secure._check_running_mode()
    assert "MEMBERSTREAM_BROKER__HOME" in str(raised.value)
    plain._check_running_mode()


def test_cli_start_secure_flag(settings: BrokerSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []

    def fake_start(self: DevBroker, fresh: bool = False) -> str:
        seen.append(self.settings.secure)
        return self.bootstrap

    monkeypatch.setattr(DevBroker, "start", fake_start)
    monkeypatch.setenv("MEMBERSTREAM_BROKER__HOME", str(settings.home))
    assert CliRunner().invoke(broker, ["start", "--secure"]).exit_code == 0
    assert CliRunner().invoke(broker, ["start"]).exit_code == 0
    monkeypatch.setenv("MEMBERSTREAM_BROKER__SECURE", "true")
    assert CliRunner().invoke(broker, ["start"]).exit_code == 0
    assert seen == [True, False, True]
