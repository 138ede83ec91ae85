"""A real Apache Kafka broker (KRaft mode, single node) for local development.

No Docker needed: Maven fetches the broker's jars from Maven Central into
``<home>/kafka-<version>/libs`` (the Maven local repository ``~/.m2`` is the
download cache), and the broker runs on the JVM as a detached process that
outlives the command that started it.

Layout under ``settings.home`` (default ``~/.cache/memberstream/broker``)::

    kafka-<version>/pom.xml, libs/    jars (may live under a different ``jars_home``)
    config/server.properties          regenerated on every start
    config/log4j.properties
    data/                             Kafka's log.dirs (meta.properties once formatted)
    logs/server.log                   broker stdout and stderr, appended
    broker.pid
    tls/ca.pem                        secure mode: the local CA, for clients' ssl_cafile
    tls/ca.p12, broker.p12, truststore.p12   the CA's key, the broker's keystore, truststore
    secrets/<user>.password           secure mode: SCRAM passwords (admin, app users), 0600
    secrets/tls-stores.password       the PKCS12 stores' password

The broker is for development only: one node, replication factor 1, bound to
127.0.0.1. Plaintext by default; ``secure`` (``broker start --secure``) puts
the client port behind TLS (a certificate from a local CA made with the JDK's
keytool) and SASL/SCRAM (users made when storage is formatted), with Kafka's
KRaft authorizer and ACLs. Point memberstream at any other Kafka with
``KAFKA_BOOTSTRAP_SERVERS``.

Secure mode, listeners:

- ``SASL_SSL://host:port``: clients, and the inter-broker listener (the broker
  logs in as ``admin``);
- ``CONTROLLER://host:controller_port``: PLAINTEXT on loopback, the KRaft
  controller; its principal ``User:ANONYMOUS`` is a super user so the broker can
  register with its own controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memberstream.config import BrokerSettings
from memberstream.config.kafka import KafkaSecuritySettings

if TYPE_CHECKING:
    from memberstream.streams.kafka_io import Acl

__all__ = [
    "READY_LINE",
    "BrokerError",
    "BrokerStatus",
    "DevBroker",
    "SecureFiles",
    "log4j_properties",
    "pom_xml",
    "server_properties",
]

READY_LINE = "Kafka Server started"
SLF4J_BINDING_VERSION = "1.7.36"
LOG_TAIL_LINES = 40
# server.log is appended across starts; it is rotated once at start past this size.
LOG_ROTATE_BYTES = 50 * 1024 * 1024
_MARKER = ".memberstream-complete"
# In data/: written once storage is formatted with SCRAM users (secure mode).
_SCRAM_MARKER = ".memberstream-scram-users"

ADMIN_USER = "admin"
SCRAM_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
CLIENT_MECHANISM = "SCRAM-SHA-512"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
KEYTOOL_TIMEOUT_S = 60
CERT_VALIDITY_DAYS = 3650


class BrokerError(RuntimeError):
    """The development broker could not be fetched, started or stopped.

    Messages say what to do next; the CLI prints them without a traceback.
    """


@dataclass
class BrokerStatus:
    """What ``DevBroker.status()`` found.

    ``running`` means our broker process is alive; ``listening`` that its port
    also accepts connections (false for a few seconds while it starts).
    """

    running: bool
    pid: int | None
    bootstrap: str
    home: Path
    log_file: Path
    listening: bool = False
    secure: bool = False


@dataclass(frozen=True)
class SecureFiles:
    """What a secure ``server.properties`` points at: the broker's PKCS12 keystore and
    truststore (one password for both) and the admin password it logs in with."""

    keystore: Path
    truststore: Path
    store_password: str
    admin_password: str


# --- generated files (pure functions, unit-tested) ------------------------------------------


def pom_xml(settings: BrokerSettings) -> str:
    """A packaging-pom project whose runtime dependencies are exactly the broker's jars."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.memberstream</groupId>
  <artifactId>dev-broker</artifactId>
  <version>{settings.kafka_version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{settings.scala_version}</artifactId>
      <version>{settings.kafka_version}</version>
    </dependency>
    <dependency>
      <!-- Kafka 3.x logs through slf4j; this binds it to reload4j (log4j 1.x API). -->
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>{SLF4J_BINDING_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""


def server_properties(
    settings: BrokerSettings, data_dir: Path, secure: SecureFiles | None = None
) -> str:
    """``server.properties`` for a single-node KRaft broker+controller on ``settings.host``.

    Auto topic creation is off: memberstream creates its topics explicitly, and
    Faust declares its internal ones (changelogs, the assignor's leader topic)
    with CreateTopics. Replication factors are 1 since there is one node.
    ``settings.secure`` needs ``secure`` (the stores and the admin password).
    """
    host, port, cport = settings.host, settings.port, settings.controller_port
    if settings.secure and secure is None:
        raise ValueError("a secure broker's server.properties needs its SecureFiles")
    client = "SASL_SSL" if settings.secure else "PLAINTEXT"
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{cport}",
        "listeners": f"{client}://{host}:{port},CONTROLLER://{host}:{cport}",
        "advertised.listeners": f"{client}://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": client,
        "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{client}:{client}",
        "auto.create.topics.enable": "false",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Compacted topics (member.profiles) need the cleaner; retention stays default.
        "log.cleaner.enable": "true",
        "log.segment.bytes": str(100 * 1024 * 1024),
    }
    if settings.secure and secure is not None:
        props.update(_secure_properties(secure))
    lines = ["# Generated by memberstream (memberstream/cli/devbroker.py); edits are lost."]
    lines += [f"{key}={value}" for key, value in props.items()]
    return "\n".join(lines) + "\n"


def _secure_properties(secure: SecureFiles) -> dict[str, str]:
    """TLS, SASL/SCRAM and the KRaft authorizer for the SASL_SSL listener."""
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{ADMIN_USER}" password="{secure.admin_password}";'
    )
    props = {
        "sasl.enabled.mechanisms": ",".join(SCRAM_MECHANISMS),
        "sasl.mechanism.inter.broker.protocol": CLIENT_MECHANISM,
    }
    for mechanism in SCRAM_MECHANISMS:
        props[f"listener.name.sasl_ssl.{mechanism.lower()}.sasl.jaas.config"] = jaas
    props.update(
        {
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(secure.keystore),
            "ssl.keystore.password": secure.store_password,
            "ssl.key.password": secure.store_password,
            "ssl.truststore.type": "PKCS12",
            "ssl.truststore.location": str(secure.truststore),
            "ssl.truststore.password": secure.store_password,
            "ssl.client.auth": "none",
            "ssl.endpoint.identification.algorithm": "https",
            "authorizer.class.name": AUTHORIZER,
            # ANONYMOUS: the broker's own principal on the PLAINTEXT controller listener.
            "super.users": f"User:{ADMIN_USER};User:ANONYMOUS",
            "allow.everyone.if.no.acl.found": "false",
        }
    )
    return props


def scram_arguments(users: dict[str, str]) -> list[str]:
    """``kafka-storage format`` arguments that create SCRAM credentials for ``users``
    (name → password) under every enabled mechanism."""
    args: list[str] = []
    for name, password in users.items():
        for mechanism in SCRAM_MECHANISMS:
            args += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
    return args


def log4j_properties() -> str:
    """Everything to stdout (redirected to server.log); the chattiest loggers at WARN."""
    return """log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.additivity.kafka.request.logger=false
log4j.logger.state.change.logger=WARN
log4j.additivity.state.change.logger=false
log4j.logger.kafka.controller=INFO
log4j.logger.org.apache.kafka.clients=WARN
"""


def parse_properties(text: str) -> dict[str, str]:
    """Parse simple ``key=value`` properties (no continuations or escapes)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip()
    return out


# --- process and port helpers -----------------------------------------------------------------


def port_in_use(host: str, port: int) -> bool:
    """True when something listens on (or holds) ``host:port``.

    Connecting catches a listener; binding (with SO_REUSEADDR, so sockets left in
    TIME_WAIT by a broker we just stopped do not count) catches a wildcard or
    not-yet-listening holder that a connect would miss.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((host, port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def _accepts(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) process; reaps it if it is our exited child."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child: it was started by an earlier command
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _cmdline(pid: int) -> list[str] | None:
    """The process's argv from /proc, or None where /proc is not available."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return [] if Path("/proc/self").exists() else None
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so two commands never fetch or start at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_from(path: Path, offset: int = 0) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _tail(path: Path, lines: int = LOG_TAIL_LINES, offset: int = 0) -> str:
    return "\n".join(_read_from(path, offset).splitlines()[-lines:]) or "(log is empty)"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (0600), replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.replace(path)


def _run_coroutine(make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine to completion from sync code, also when this thread already
    runs an event loop (an async test calling ``DevBroker.start``)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = asyncio.run(make())
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=run, name="devbroker-admin")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")


# --- the broker -------------------------------------------------------------------------------


class DevBroker:
    """Fetch, start, stop and inspect the local development broker.

    ``jars_home`` is where ``kafka-<version>/libs`` lives (default: ``settings.home``).
    Tests pass the default home here so a broker in a temporary home reuses the
    jars already fetched, while its config, data, logs and pid file stay in the
    temporary home.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        echo: Callable[[str], None] = print,
        jars_home: Path | None = None,
    ) -> None:
        self.settings = settings
        self.echo = echo
        self.home = Path(settings.home).expanduser().resolve()
        self.kafka_dir = (
            Path(jars_home or self.home).expanduser().resolve() / f"kafka-{settings.kafka_version}"
        )
        self.libs_dir = self.kafka_dir / "libs"
        self.config_dir = self.home / "config"
        self.server_properties_file = self.config_dir / "server.properties"
        self.log4j_file = self.config_dir / "log4j.properties"
        self.data_dir = self.home / "data"
        self.log_file = self.home / "logs" / "server.log"
        self.pid_file = self.home / "broker.pid"
        self.tls_dir = self.home / "tls"
        self.ca_file = self.tls_dir / "ca.pem"
        self.ca_store = self.tls_dir / "ca.p12"
        self.keystore_file = self.tls_dir / "broker.p12"
        self.truststore_file = self.tls_dir / "truststore.p12"
        self.secrets_dir = self.home / "secrets"
        self.store_password_file = self.secrets_dir / "tls-stores.password"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    # -- secure mode: users, passwords, certificates -------------------------------------------

    @property
    def users(self) -> list[str]:
        """The SCRAM users of a secure broker: the super user first, then the app users."""
        return [ADMIN_USER, *(u for u in self.settings.app_users if u != ADMIN_USER)]

    @property
    def app_user(self) -> str:
        """The user clients connect as by default: the first app user (else admin)."""
        return self.users[1] if len(self.users) > 1 else ADMIN_USER

    def password_file(self, user: str) -> Path:
        return self.secrets_dir / f"{user}.password"

    def _secret(self, path: Path) -> str:
        """The password kept in ``path``; generated (and kept, 0600) the first time."""
        try:
            value = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            value = ""
        if not value:
            value = secrets.token_urlsafe(24)  # [A-Za-z0-9_-]: safe in properties and JAAS
            _write_private(path, value + "\n")
        return value

    def client_security(self, user: str | None = None) -> KafkaSecuritySettings:
        """How a client connects to this broker as ``user`` (default: the first app user).

        Plaintext for a plaintext broker; otherwise SASL_SSL with the user's password
        file and the local CA. Call after ``start`` (the files must exist).
        """
        if not self.settings.secure:
            return KafkaSecuritySettings()
        return KafkaSecuritySettings(
            security_protocol="SASL_SSL",
            sasl_mechanism=CLIENT_MECHANISM,
            sasl_username=user or self.app_user,
            sasl_password_file=self.password_file(user or self.app_user),
            ssl_cafile=self.ca_file,
        )

    def client_env(self, user: str | None = None) -> dict[str, str]:
        """The environment variables that point memberstream at this broker as ``user``
        (no password: it stays in the password file they name)."""
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}
        if not self.settings.secure:
            return env
        security = self.client_security(user)
        env.update(
            {
                "MEMBERSTREAM_KAFKA__SECURITY_PROTOCOL": security.security_protocol,
                "MEMBERSTREAM_KAFKA__SASL_MECHANISM": security.sasl_mechanism,
                "MEMBERSTREAM_KAFKA__SASL_USERNAME": str(security.sasl_username),
                "MEMBERSTREAM_KAFKA__SASL_PASSWORD_FILE": str(security.sasl_password_file),
                "MEMBERSTREAM_KAFKA__SSL_CAFILE": str(security.ssl_cafile),
            }
        )
        return env

    def _secure_files(self) -> SecureFiles:
        return SecureFiles(
            keystore=self.keystore_file,
            truststore=self.truststore_file,
            store_password=self._secret(self.store_password_file),
            admin_password=self._secret(self.password_file(ADMIN_USER)),
        )

    def tls_complete(self) -> bool:
        return all(f.is_file() for f in (self.ca_file, self.keystore_file, self.truststore_file))

    def ensure_tls(self) -> None:
        """Make the local CA, the broker's certificate (SAN: the host, 127.0.0.1 and
        localhost), its PKCS12 keystore and truststore, and ``tls/ca.pem``; once.

        Built in a scratch directory and moved into place, so an interrupted run is
        redone whole. Passwords reach keytool through a file, never on its command line.
        """
        if self.tls_complete():
            return
        keytool = shutil.which("keytool")
        if keytool is None:
            raise BrokerError(
                "keytool not found (it comes with the JDK): install Java 17+ "
                "(apt-get install openjdk-17-jdk-headless)"
            )
        self._secret(self.store_password_file)
        self.echo(f"making a local CA and a broker certificate with keytool in {self.tls_dir}")
        work = self.home / "tls.tmp"
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        work.chmod(0o755)  # ca.pem is for anyone; the stores inside are 0600
        pw = f"{self.store_password_file}"
        names = ["ip:127.0.0.1", "dns:localhost"]
        host = self.settings.host
        if host not in ("127.0.0.1", "localhost"):
            try:
                socket.inet_aton(host)
                names.insert(0, f"ip:{host}")
            except OSError:
                names.insert(0, f"dns:{host}")
        san = "SAN=" + ",".join(names)
        days = str(CERT_VALIDITY_DAYS)
        ca_store, keystore = str(work / "ca.p12"), str(work / "broker.p12")
        steps = [
            ["-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-keysize", "2048",
             "-dname", "CN=memberstream dev CA", "-ext", "bc:c=ca:true",
             "-ext", "KU:c=keyCertSign,cRLSign", "-validity", days,
             "-keystore", ca_store, "-storetype", "PKCS12"],
            ["-exportcert", "-rfc", "-alias", "ca", "-keystore", ca_store,
             "-file", str(work / "ca.pem")],
            ["-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048",
             "-dname", "CN=localhost", "-ext", san, "-validity", days,
             "-keystore", keystore, "-storetype", "PKCS12"],
            ["-certreq", "-alias", "broker", "-keystore", keystore,
             "-file", str(work / "broker.csr")],
            ["-gencert", "-alias", "ca", "-keystore", ca_store, "-rfc",
             "-infile", str(work / "broker.csr"), "-outfile", str(work / "broker.pem"),
             "-ext", san, "-ext", "KU:c=digitalSignature,keyEncipherment",
             "-ext", "EKU=serverAuth", "-validity", days],
            ["-importcert", "-noprompt", "-alias", "ca", "-file", str(work / "ca.pem"),
             "-keystore", keystore],
            ["-importcert", "-noprompt", "-alias", "broker", "-file", str(work / "broker.pem"),
             "-keystore", keystore],
            ["-importcert", "-noprompt", "-alias", "ca", "-file", str(work / "ca.pem"),
             "-keystore", str(work / "truststore.p12"), "-storetype", "PKCS12"],
        ]  # fmt: skip
        for step in steps:
            password = ["-storepass:file", pw]
            if step[0] == "-genkeypair":
                password += ["-keypass:file", pw]
            self._keytool([keytool, *step, *password])
        for tmp in work.glob("*.p12"):
            tmp.chmod(0o600)
        (work / "ca.pem").chmod(0o644)
        for name in ("broker.csr", "broker.pem"):
            (work / name).unlink()
        if self.tls_dir.exists():
            shutil.rmtree(self.tls_dir)
        work.replace(self.tls_dir)

    def _keytool(self, cmd: list[str]) -> None:
        try:
            done = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=KEYTOOL_TIMEOUT_S,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BrokerError(f"keytool {cmd[1]} failed: {exc}") from exc
        if done.returncode != 0:
            raise BrokerError(
                f"keytool {cmd[1]} failed (exit {done.returncode}); delete {self.tls_dir} "
                f"and retry. Output:\n{(done.stdout + done.stderr).strip()}"
            )

    def set_acls(self, acls: list[Acl]) -> None:
        """Create ACLs on this (secure, running) broker as the super user.

        Allow and deny entries both (see ``kafka_io.Acl``); an ACL that exists already
        is left as it is.
        """
        from memberstream.streams.kafka_io import KafkaConnection, create_acls

        if not self.settings.secure:
            raise BrokerError("ACLs need a secure broker (broker start --secure)")
        admin = KafkaConnection(self.bootstrap, self.client_security(ADMIN_USER))
        _run_coroutine(lambda: create_acls(admin, acls))

    def grant_app_acls(self) -> None:
        """The app users' ACLs (``settings.acl_topic_prefixes`` and ``acl_group_prefixes``)."""
        from memberstream.streams.kafka_io import app_acls

        acls: list[Acl] = []
        for user in self.users[1:]:
            acls += app_acls(
                f"User:{user}", self.settings.acl_topic_prefixes, self.settings.acl_group_prefixes
            )
        if acls:
            self.set_acls(acls)

    def _connect_help(self) -> None:
        """How to connect to a secure broker; passwords stay in their files."""
        self.echo(
            f"secured: SASL_SSL ({', '.join(SCRAM_MECHANISMS)}) on {self.bootstrap}, "
            f"CA certificate {self.ca_file}"
        )
        self.echo(f"users: {', '.join(self.users)} (super user {ADMIN_USER}); passwords in "
                  f"{self.secrets_dir}/<user>.password")  # fmt: skip
        self.echo(f"connect as {self.app_user}:")
        for key, value in self.client_env().items():
            self.echo(f"  export {key}={value}")

    # -- jars --------------------------------------------------------------------------------

    def _marker_text(self) -> str:
        s = self.settings
        return f"kafka_{s.scala_version}:{s.kafka_version} slf4j-reload4j:{SLF4J_BINDING_VERSION}\n"

    def jars_complete(self) -> bool:
        """True when a previous fetch finished for these exact coordinates."""
        marker = self.libs_dir / _MARKER
        try:
            return marker.read_text() == self._marker_text() and any(self.libs_dir.glob("*.jar"))
        except OSError:
            return False

    def fetch_jars(self) -> Path:
        """Copy the broker's jars into ``libs`` with Maven; a no-op once complete.

        Returns the libs directory. A marker file is written only after Maven
        succeeds, so an interrupted fetch is redone on the next call.
        """
        if self.jars_complete():
            return self.libs_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("mvn not found: install Maven 3.8+ (apt-get install maven)")
        with _locked(self.kafka_dir / ".fetch.lock"):
            if self.jars_complete():  # another command fetched while we waited
                return self.libs_dir
            self._run_maven(mvn)
        return self.libs_dir

    def _run_maven(self, mvn: str) -> None:
        s = self.settings
        self.kafka_dir.mkdir(parents=True, exist_ok=True)
        if self.libs_dir.exists():
            shutil.rmtree(self.libs_dir)  # a partial or other-version copy
        self.libs_dir.mkdir(parents=True)
        pom = self.kafka_dir / "pom.xml"
        pom.write_text(pom_xml(s))
        self.echo(
            f"fetching Kafka {s.kafka_version} (Scala {s.scala_version}) jars with Maven "
            f"into {self.libs_dir} (first run only; ~/.m2 caches downloads)"
        )
        cmd = [
            mvn, "-B", "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={self.libs_dir}", "-DincludeScope=runtime",
        ]  # fmt: skip
        recent: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        downloaded = 0
        try:
            proc = subprocess.Popen(
                cmd,
                cwd=self.kafka_dir,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
            )
        except OSError as exc:
            raise BrokerError(f"could not run {mvn}: {exc}") from exc
        assert proc.stdout is not None
        with proc:
            for raw in proc.stdout:
                line = raw.rstrip()
                recent.append(line)
                if line.startswith("Downloaded from"):
                    downloaded += 1
                    # "Downloaded from central: https://.../x.jar (6.2 MB at 3 MB/s)"
                    url_and_size = line.split(": ", 1)[-1]
                    name = url_and_size.split(" ", 1)[0].rsplit("/", 1)[-1]
                    if name.endswith(".jar"):
                        size = url_and_size.partition(" ")[2]
                        self.echo(f"  downloaded {name} {size}".rstrip())
                    elif downloaded % 25 == 0:
                        self.echo(f"  ... {downloaded} files downloaded")
        if proc.returncode != 0:
            output = "\n".join(recent)
            raise BrokerError(
                f"Maven failed (exit {proc.returncode}) fetching Kafka {s.kafka_version}; "
                f"check network access to Maven Central, then retry. Last output:\n{output}"
            )
        jars = sorted(self.libs_dir.glob("*.jar"))
        if not any(j.name.startswith(f"kafka_{s.scala_version}-") for j in jars):
            raise BrokerError(
                f"Maven succeeded but no kafka_{s.scala_version} jar in {self.libs_dir}"
            )
        (self.libs_dir / _MARKER).write_text(self._marker_text())
        self.echo(f"fetched {len(jars)} jars ({downloaded} files downloaded)")

    # -- status ------------------------------------------------------------------------------

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _alive(self, pid: int) -> bool:
        # Our own child is checked through Popen, which keeps its exit code.
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        return _alive(pid)

    def _is_our_broker(self, pid: int) -> bool:
        """Alive, and (where /proc says) really this home's Kafka, not a recycled pid."""
        if not self._alive(pid):
            return False
        argv = _cmdline(pid)
        if argv is None:
            return True
        return "kafka.Kafka" in argv and str(self.server_properties_file) in argv

    def status(self) -> BrokerStatus:
        """Report on the broker; a pid file naming no live broker is removed as stale."""
        pid = self._read_pid()
        running = pid is not None and self._is_our_broker(pid)
        if not running:
            if self.pid_file.exists():
                self.pid_file.unlink(missing_ok=True)
            pid = None
        listening = running and _accepts(self.settings.host, self.settings.port)
        return BrokerStatus(
            running=running,
            pid=pid,
            bootstrap=self.bootstrap,
            home=self.home,
            log_file=self.log_file,
            listening=listening,
            secure=self._config_is_secure() if running else self.settings.secure,
        )

    # -- start -------------------------------------------------------------------------------

    def start(self, fresh: bool = False) -> str:
        """Start the broker if needed and wait until it serves; return ``host:port``.

        ``fresh`` stops nothing: it only applies when the broker is not running,
        and wipes the data directory (all topics) before starting.
        """
        with _locked(self.home / ".lock"):
            current = self.status()
            if current.running and current.pid is not None:
                self._check_running_mode()
                if fresh:
                    self.echo("broker already running; --fresh ignored (stop it first)")
                if not current.listening:
                    self.echo(f"broker (pid {current.pid}) is starting; waiting for it")
                    self._wait_ready(current.pid, log_offset=None)
                else:
                    self.echo(f"broker already running (pid {current.pid})")
                if self.settings.secure:
                    self._connect_help()
                return self.bootstrap
            self._check_ports()
            java = shutil.which("java")
            if java is None:
                raise BrokerError(
                    "java not found: install Java 17+ (apt-get install openjdk-17-jre-headless)"
                )
            self.fetch_jars()
            if fresh and self.data_dir.exists():
                self.echo(f"--fresh: deleting {self.data_dir}")
                shutil.rmtree(self.data_dir)
            if self.settings.secure:
                self.ensure_tls()
            self._write_config()
            if not (self.data_dir / "meta.properties").exists():
                self._format_storage(java)
            elif self.settings.secure:
                self._check_scram_users()
            pid, offset = self._launch(java)
            try:
                self._wait_ready(pid, log_offset=offset)
                if self.settings.secure:
                    self.grant_app_acls()
            except BaseException:
                self._kill_after_failed_start(pid)
                raise
            self.echo(
                f"Kafka {self.settings.kafka_version} ready (pid {pid}), log: {self.log_file}"
            )
            if self.settings.secure:
                self._connect_help()
            return self.bootstrap

    def _config_is_secure(self) -> bool:
        """Whether the config last written here (the running broker's) is a secure one."""
        try:
            props = parse_properties(self.server_properties_file.read_text())
        except OSError:
            return self.settings.secure
        return "sasl.enabled.mechanisms" in props

    def _check_running_mode(self) -> None:
        """A running broker from this home must be in the mode asked for."""
        running_secure = self._config_is_secure()
        if running_secure != self.settings.secure:
            now = "secure (SASL_SSL)" if running_secure else "plaintext"
            raise BrokerError(
                f"a {now} broker is already running from {self.home}: stop it first, or run "
                "the other one side by side with its own MEMBERSTREAM_BROKER__HOME, "
                "MEMBERSTREAM_BROKER__PORT and MEMBERSTREAM_BROKER__CONTROLLER_PORT"
            )

    def _check_scram_users(self) -> None:
        """SCRAM users are made when storage is formatted: data formatted without them
        (a plaintext broker's) cannot serve a secure one."""
        marker = self.data_dir / _SCRAM_MARKER
        try:
            have = set(marker.read_text().split())
        except OSError:
            have = set()
        missing = [u for u in self.users if u not in have]
        if missing:
            raise BrokerError(
                f"the data in {self.data_dir} was formatted without the SCRAM users "
                f"{', '.join(missing)} (they are made at format time): start with --fresh "
                "(deletes all topics) or use another MEMBERSTREAM_BROKER__HOME"
            )

    def _check_ports(self) -> None:
        s = self.settings
        for name, port, env in (
            ("port", s.port, "MEMBERSTREAM_BROKER__PORT"),
            ("controller port", s.controller_port, "MEMBERSTREAM_BROKER__CONTROLLER_PORT"),
        ):
            if port_in_use(s.host, port):
                raise BrokerError(
                    f"{name} {port} already in use by another process on {s.host}: stop it, "
                    f"or set {env} to a free port (or point KAFKA_BOOTSTRAP_SERVERS at that "
                    "Kafka if it is one)"
                )

    def _write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.settings.secure:  # holds the admin and keystore passwords
            text = server_properties(self.settings, self.data_dir, self._secure_files())
            _write_private(self.server_properties_file, text)
        else:
            self.server_properties_file.write_text(server_properties(self.settings, self.data_dir))
        self.log4j_file.write_text(log4j_properties())

    def _java_base(self, java: str, *jvm_options: str) -> list[str]:
        return [
            java,
            *jvm_options,
            "-cp",
            f"{self.libs_dir}{os.sep}*",  # the JVM expands this wildcard itself
            f"-Dlog4j.configuration={self.log4j_file.as_uri()}",
        ]

    def _format_storage(self, java: str) -> None:
        self.echo(f"formatting KRaft storage in {self.data_dir}")
        base = self._java_base(java)
        uuid = self._java_tool([*base, "kafka.tools.StorageTool", "random-uuid"]).strip()
        cluster_id = uuid.splitlines()[-1].strip() if uuid else ""
        if not cluster_id:
            raise BrokerError("kafka.tools.StorageTool random-uuid printed no cluster id")
        scram: list[str] = []
        if self.settings.secure:
            users = {user: self._secret(self.password_file(user)) for user in self.users}
            scram = scram_arguments(users)
            self.echo(f"creating SCRAM users {', '.join(users)}")
        self._java_tool(
            [*base, "kafka.tools.StorageTool", "format", "-t", cluster_id,
             "-c", str(self.server_properties_file), *scram]
        )  # fmt: skip
        if self.settings.secure:
            (self.data_dir / _SCRAM_MARKER).write_text("\n".join(self.users) + "\n")

    def _java_tool(self, cmd: list[str]) -> str:
        try:
            done = subprocess.run(
                cmd,
                cwd=self.home,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BrokerError(f"{' '.join(cmd[-3:])} failed: {exc}") from exc
        if done.returncode != 0:
            output = "\n".join((done.stdout + done.stderr).splitlines()[-LOG_TAIL_LINES:])
            raise BrokerError(
                f"{cmd[cmd.index('kafka.tools.StorageTool') + 1]} storage step failed "
                f"(exit {done.returncode}); try `start --fresh`. Output:\n{output}"
            )
        return done.stdout

    def _launch(self, java: str) -> tuple[int, int]:
        """Start the JVM detached; return its pid and where this run's log output begins."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        if self.log_file.exists() and self.log_file.stat().st_size > LOG_ROTATE_BYTES:
            self.log_file.replace(self.log_file.with_name(self.log_file.name + ".1"))
        cmd = [
            *self._java_base(java, f"-Xmx{self.settings.heap}", "-Djava.awt.headless=true"),
            "kafka.Kafka",
            str(self.server_properties_file),
        ]
        with self.log_file.open("ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"\n=== memberstream dev broker starting {stamp} ===\n".encode())
            log.flush()
            offset = log.tell()
            try:
                # start_new_session: the broker survives the CLI exiting and Ctrl-C in its shell.
                self._proc = subprocess.Popen(
                    cmd,
                    cwd=self.home,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise BrokerError(f"could not launch {java}: {exc}") from exc
        pid = self._proc.pid
        self.pid_file.write_text(f"{pid}\n")
        self.echo(
            f"starting Kafka {self.settings.kafka_version} on {self.bootstrap} "
            f"(pid {pid}, log {self.log_file})"
        )
        return pid, offset

    def _wait_ready(self, pid: int, log_offset: int | None) -> None:
        """Wait for the ready line (when we launched it) and an accepting port.

        Fails fast if the process exits; ``log_offset`` None means another command
        launched it, so only the port is watched.
        """
        timeout = self.settings.start_timeout_s
        deadline = time.monotonic() + timeout
        self.echo(f"waiting for the broker to accept connections (up to {timeout:.0f}s)")
        saw_ready = log_offset is None
        while True:
            if not self._alive(pid):
                code = self._proc.poll() if self._proc and self._proc.pid == pid else None
                self.pid_file.unlink(missing_ok=True)
                how = f"exited with code {code}" if code is not None else "exited"
                raise BrokerError(
                    f"Kafka {how} during start-up; see {self.log_file}. Last log lines:\n"
                    f"{_tail(self.log_file, offset=log_offset or 0)}"
                )
            if not saw_ready and log_offset is not None:
                saw_ready = READY_LINE in _read_from(self.log_file, log_offset)
            if saw_ready and _accepts(self.settings.host, self.settings.port):
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"Kafka did not start within {timeout:.0f}s (raise "
                    f"MEMBERSTREAM_BROKER__START_TIMEOUT_S if the machine is slow); "
                    f"see {self.log_file}. Last log lines:\n"
                    f"{_tail(self.log_file, offset=log_offset or 0)}"
                )
            time.sleep(0.25)

    def _kill_after_failed_start(self, pid: int) -> None:
        if self._alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._wait_exit(pid, 10)
        self.pid_file.unlink(missing_ok=True)

    # -- stop --------------------------------------------------------------------------------

    def stop(self, timeout: float = 30) -> bool:
        """Stop the broker; True if one was running, False if there was nothing to stop.

        SIGTERM lets Kafka shut down cleanly (flush logs, leave the quorum); if it
        has not exited after ``timeout`` seconds it is killed with SIGKILL.
        """
        with _locked(self.home / ".lock"):
            current = self.status()
            if not current.running or current.pid is None:
                self.echo("broker not running")
                return False
            pid = current.pid
            self.echo(f"stopping broker (pid {pid})")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout):
                self.echo(f"broker did not exit within {timeout:.0f}s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                if not self._wait_exit(pid, 10):
                    raise BrokerError(f"could not stop broker pid {pid}; kill it by hand")
            self.pid_file.unlink(missing_ok=True)
            self.echo("broker stopped")
            return True

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        if self._proc is not None and self._proc.pid == pid:
            with contextlib.suppress(ChildProcessError):
                self._proc.wait(timeout=1)
            self._proc = None
        return True
