"""Unit tests for the development broker manager; no JVM, no Maven."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from memberstream.config import BrokerSettings
from memberstream.streams.commands.broker import broker
from memberstream.streams.devbroker import (
    BrokerError,
    DevBroker,
    log4j_properties,
    parse_properties,
    pom_xml,
    server_properties,
)


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
    # faust relies on auto topic creation: it must not be turned off.
    assert props.get("auto.create.topics.enable", "true") == "true"


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
