"""Start-up checks: Kafka answers, and every topic is there as the settings say.

The worker never relies on the broker creating topics on first use (Kafka's
``auto.create.topics.enable`` would make them with the broker's default
partition count and cleanup policy): before it starts, it checks that every
topic it reads and writes exists with ``settings.partitions`` partitions, that
the compacted topics are compacted and the others are not, and that
``labels.feedback`` keeps its records forever, and it refuses to start
otherwise. ``memberstream topics check`` prints the same report.

Topics are described from the cluster's full metadata (a metadata request that
names a missing topic could make the broker create it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    ClusterAuthorizationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    UnsupportedSaslMechanismError,
    for_code,
)

from memberstream.config import Settings
from memberstream.errors import AuthError, KafkaUnavailableError, TopicsNotReady

T = TypeVar("T")

#: Errors that mean Kafka answered but refused us: retrying will not help.
AUTH_ERRORS: tuple[type[BaseException], ...] = (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    ClusterAuthorizationFailedError,
    IllegalSaslStateError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    UnsupportedSaslMechanismError,
    ssl.SSLError,
)

#: How long a topic may take to show up in metadata after it was created.
METADATA_GRACE_S = 2.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a private event loop, leaving the thread's current loop alone
    (Faust later runs the worker on it)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


class _Capture(logging.Handler):
    """Keeps what aiokafka logs while connecting: the real reason a bootstrap failed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def auth_error(self) -> BaseException | None:
        for record in self.records:
            for arg in record.args if isinstance(record.args, tuple) else ():
                if isinstance(arg, AUTH_ERRORS):
                    return arg
        return None

    def last(self) -> str | None:
        return self.records[-1].getMessage() if self.records else None


@contextlib.contextmanager
def _captured_kafka_logs() -> Iterator[_Capture]:
    logger = logging.getLogger("aiokafka")
    capture = _Capture()
    logger.addHandler(capture)
    try:
        yield capture
    finally:
        logger.removeHandler(capture)


def _auth_error(settings: Settings, exc: BaseException) -> AuthError:
    protocol = settings.kafka.security_protocol
    if isinstance(exc, ssl.SSLError):
        return AuthError(
            f"TLS handshake with Kafka at {settings.kafka_bootstrap_servers} failed: {exc}",
            hint="check kafka.ssl_cafile (the CA that signed the brokers' certificates), "
            "kafka.ssl_check_hostname, and that the port speaks TLS",
        )
    return AuthError(
        f"Kafka at {settings.kafka_bootstrap_servers} refused the connection "
        f"({protocol}, {settings.kafka.sasl_mechanism}): {type(exc).__name__}: {exc}"
    )


async def wait_for_broker(
    settings: Settings,
    timeout_s: float | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> None:
    """Return once Kafka answers a metadata request.

    Raises KafkaUnavailableError after ``timeout_s`` (default
    ``settings.startup_timeout_s``), and AuthError at once when Kafka refuses the
    credentials or the TLS handshake. ``on_wait`` is told once when the first try fails.
    """
    timeout = settings.startup_timeout_s if timeout_s is None else timeout_s
    bootstrap = settings.kafka_bootstrap_servers
    deadline = time.monotonic() + timeout
    last: str | None = None
    told = False
    with _captured_kafka_logs() as logs:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            request_ms = int(max(min(remaining, 10.0), 1.0) * 1000)
            try:
                admin = AIOKafkaAdminClient(
                    **settings.kafka_client_kwargs(), request_timeout_ms=request_ms
                )
            except (ValueError, TypeError) as exc:  # e.g. a malformed bootstrap address
                raise KafkaUnavailableError(
                    f"bad Kafka bootstrap address {bootstrap!r}: {exc}",
                    hint="set KAFKA_BOOTSTRAP_SERVERS to host:port[,host:port...]",
                ) from exc
            try:
                await asyncio.wait_for(_probe(admin), remaining)
                return
            except AUTH_ERRORS as exc:
                raise _auth_error(settings, exc) from exc
            except (TimeoutError, KafkaConnectionError, OSError) as exc:
                last = logs.last() or f"{type(exc).__name__}: {exc}"
                budget = max(deadline - time.monotonic(), 2.0)
                if (diagnosed := await _diagnose(settings, budget)) is not None:
                    raise diagnosed from exc
                if (refused := logs.auth_error()) is not None:
                    raise _auth_error(settings, refused) from exc
            finally:
                with contextlib.suppress(Exception):
                    await admin.close()
            if on_wait is not None and not told:
                told = True
                on_wait(f"waiting up to {timeout:g} s for Kafka at {bootstrap} ...")
            await asyncio.sleep(min(0.5, max(deadline - time.monotonic(), 0)))
    raise KafkaUnavailableError(
        f"no Kafka answered at {bootstrap} within {timeout:g} s"
        + (f" (last: {last})" if last else ""),
        hint="start the development broker with `memberstream broker start`, or set "
        f"KAFKA_BOOTSTRAP_SERVERS to a running Kafka (now {bootstrap}); the wait is "
        "MEMBERSTREAM_STARTUP_TIMEOUT_S",
    )


async def _diagnose(settings: Settings, timeout_s: float) -> AuthError | None:
    """Why Kafka refused us, when it answered but would not serve us (kafka_io's
    diagnosis: a failed login, TLS spoken to a plaintext listener, ...)."""
    from memberstream.streams import kafka_io

    diagnose = getattr(kafka_io, "diagnose", None)
    if diagnose is None:
        return None
    try:
        problem = await asyncio.wait_for(diagnose(settings), timeout_s)
    except Exception:  # a diagnosis that fails tells nothing more than the failure itself
        return None
    return None if problem is None else AuthError(str(problem))


async def _probe(admin: AIOKafkaAdminClient) -> None:
    await admin.start()
    await admin.list_topics()


# --- topics -----------------------------------------------------------------------------


@dataclass
class TopicState:
    """One topic as found on the cluster, and what is wrong with it."""

    name: str
    role: str
    compacted: bool = False
    partitions: int | None = None  # None: missing
    cleanup_policy: str | None = None
    retention_ms: str | None = None
    problems: list[str] = field(default_factory=list)
    configs: dict[str, str] = field(default_factory=dict)
    """What ``topics describe`` shows: replication and the topic configs read."""
    drift: list[str] = field(default_factory=list)
    """Differences from the settings that do not stop a worker (e.g. replication)."""

    @property
    def missing(self) -> bool:
        return self.partitions is None

    def describe_lines(self) -> list[str]:
        """The ``topics describe`` entry: role, partitions, replication, configs, drift."""
        if self.missing:
            return [f"{self.name}  ({self.role})  MISSING"]
        c = self.configs
        shown = ", ".join(
            f"{k}={c[k]}" for k in ("cleanup.policy", "retention.ms", "min.insync.replicas")
            if k in c
        )  # fmt: skip
        head = (
            f"{self.name}  ({self.role})  partitions={self.partitions} "
            f"replication={c.get('replication', '?')}  {shown}"
        )
        return [head, *(f"    drift: {d}" for d in [*self.problems, *self.drift])]

    def line(self) -> str:
        """One line of the ``topics check`` report."""
        if self.missing:
            return f"missing  {self.name} ({self.role})"
        status = "wrong" if self.problems else "ok"
        details = f"{self.partitions} partitions, cleanup.policy={self.cleanup_policy}"
        if self.retention_ms is not None:
            details += f", retention.ms={self.retention_ms}"
        text = f"{status:8} {self.name} ({self.role}; {details})"
        return "\n".join([text, *(f"         - {p}" for p in self.problems)])


@dataclass
class TopicReport:
    """Every topic the worker reads and writes, checked against the settings."""

    bootstrap: str
    partitions: int
    topics: list[TopicState]

    @property
    def problems(self) -> list[str]:
        return [f"{t.name}: {p}" for t in self.topics for p in t.problems]

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        return [t.line() for t in self.topics]

    def hint(self) -> str:
        """What to do about each kind of problem found."""
        hints: list[str] = []
        if any(t.missing for t in self.topics):
            hints.append("`memberstream topics create` creates the missing topics")
        wrong = [t for t in self.topics if not t.missing and t.partitions != self.partitions]
        if wrong:
            counts = {t.partitions for t in self.topics if not t.missing}
            if len(counts) == 1 and not any(t.missing for t in self.topics):
                (n,) = counts
                hints.append(
                    f"every topic has {n} partitions: set partitions = {n} "
                    f"(MEMBERSTREAM_PARTITIONS={n}), or delete the topics and recreate them "
                    "with `memberstream topics create`"
                )
            else:
                names = ",".join(t.name for t in wrong)
                hints.append(
                    "a partition count cannot change without moving keys: delete the topic "
                    f"(kafka-topics.sh --bootstrap-server {self.bootstrap} --delete --topic "
                    f"{names}; its records are lost) and run `memberstream topics create`"
                )
        for key in ("cleanup.policy", "retention.ms"):
            for t in self.topics:
                if any(p.startswith(key) for p in t.problems):
                    policy = "compact" if t.compacted else "delete"
                    wanted = policy if key == "cleanup.policy" else "-1"
                    hints.append(
                        f"kafka-configs.sh --bootstrap-server {self.bootstrap} --alter "
                        f"--entity-type topics --entity-name {t.name} "
                        f"--add-config {key}={wanted}"
                    )
        return "\n".join(hints)

    def error(self, listed: bool = False) -> TopicsNotReady:
        """TopicsNotReady naming each problem (``listed``: the report was printed already)."""
        problems = self.problems
        bad = sum(1 for t in self.topics if t.problems)
        message = f"{bad} of {len(self.topics)} topics are missing or not as configured"
        if listed:
            message += " (see above)"
        else:
            message += ":\n" + "\n".join(f"  {p}" for p in problems)
        return TopicsNotReady(message, hint=self.hint(), problems=problems)


def _roles(settings: Settings) -> dict[str, str]:
    t = settings.topics
    roles = dict.fromkeys(t.inputs(), "input")
    roles[t.feedback] = "input, labels"
    roles[t.product_reviews] = "internal"
    roles[t.dlq] = "output, dead letters"
    roles[t.model_updates] = "model versions"
    for name in t.all():
        roles.setdefault(name, "output")
    for name in t.compacted():
        roles[name] += ", compacted"
    return roles


DESCRIBED_CONFIGS = ("cleanup.policy", "retention.ms", "min.insync.replicas", "segment.ms")


async def _describe(
    admin: AIOKafkaAdminClient, names: list[str], config_names: tuple[str, ...] = DESCRIBED_CONFIGS
) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    """Partition counts of the topics among ``names`` that exist, and their configs
    (with ``replication`` added: the replicas of the first partition, when known)."""
    metadata = await admin.describe_topics()  # every topic: naming one could create it
    found = [m for m in metadata if m["topic"] in names and m["error_code"] == 0]
    partitions = {m["topic"]: len(m["partitions"]) for m in found}
    replication = {
        m["topic"]: len(m["partitions"][0].get("replicas", ()))
        for m in found
        if m["partitions"] and m["partitions"][0].get("replicas")
    }
    configs: dict[str, dict[str, str]] = {}
    if partitions:
        wanted = dict.fromkeys(config_names)
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, n, dict(wanted)) for n in sorted(partitions)
        ]
        for response in await admin.describe_configs(resources):
            for resource in response.to_object()["resources"]:
                name, code = resource["resource_name"], resource.get("error_code", 0)
                if code:
                    raise _config_error(name, code, resource.get("error_message"))
                entries = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
                configs[name] = entries
    for name, n in replication.items():
        configs.setdefault(name, {})["replication"] = str(n)
    return partitions, configs


def _config_error(topic: str, code: int, message: str | None) -> AuthError | TopicsNotReady:
    error = for_code(code)
    if issubclass(error, TopicAuthorizationFailedError):
        return AuthError(
            f"not authorized to describe the configs of topic {topic}",
            hint="the worker's principal needs DESCRIBE_CONFIGS on its topics "
            "(besides READ, WRITE and DESCRIBE)",
        )
    return TopicsNotReady(
        f"cannot describe the configs of topic {topic}: {error.__name__} {message or ''}".rstrip(),
        hint="check the topic with kafka-configs.sh --describe",
    )


async def check_topics(settings: Settings) -> TopicReport:
    """Describe every topic the worker reads and writes; the report lists the problems:
    a missing topic, a partition count other than ``settings.partitions``, a compacted
    topic that is not compacted (or another topic that is), ``labels.feedback`` without
    ``retention.ms=-1``."""
    names = settings.topics.all()
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        deadline = time.monotonic() + METADATA_GRACE_S
        while True:
            partitions, configs = await _describe(admin, names)
            if len(partitions) == len(set(names)) or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.5)  # a topic created a moment ago may not be listed yet
    finally:
        await admin.close()

    roles = _roles(settings)
    compacted = settings.topics.compacted()
    states: list[TopicState] = []
    for name in names:
        state = TopicState(name, roles[name], compacted=name in compacted)
        states.append(state)
        if name not in partitions:
            state.problems.append("missing")
            continue
        state.partitions = partitions[name]
        config = configs.get(name, {})
        state.configs = dict(config)
        replicas = config.get("replication")
        if replicas is not None and int(replicas) != settings.replication_factor:
            state.drift.append(
                f"replication {replicas}, the settings say {settings.replication_factor}"
            )
        state.cleanup_policy = config.get("cleanup.policy")
        if name == settings.topics.feedback:
            state.retention_ms = config.get("retention.ms")
        if state.partitions != settings.partitions:
            state.problems.append(
                f"{state.partitions} partitions, the settings say {settings.partitions}"
            )
        policy = set((state.cleanup_policy or "").replace(" ", "").split(","))
        if name in compacted and "compact" not in policy:
            state.problems.append(
                f"cleanup.policy={state.cleanup_policy}, must be compact "
                "(it keeps the latest record per key)"
            )
        elif name not in compacted and "compact" in policy:
            state.problems.append(
                f"cleanup.policy={state.cleanup_policy}, must be delete "
                "(compaction would drop records that share a key)"
            )
        if name == settings.topics.feedback and state.retention_ms != "-1":
            state.problems.append(
                f"retention.ms={state.retention_ms}, must be -1 "
                "(analyst labels are kept forever for the learning loop)"
            )
    return TopicReport(settings.kafka_bootstrap_servers, settings.partitions, states)


async def ensure_topics(settings: Settings) -> TopicReport:
    """The topic report; TopicsNotReady listing each problem unless every topic is fine."""
    report = await check_topics(settings)
    if not report.ok:
        raise report.error()
    return report


async def preflight(
    settings: Settings, on_wait: Callable[[str], None] | None = None
) -> TopicReport:
    """What the worker checks before it starts: Kafka answers, every topic is ready."""
    await wait_for_broker(settings, on_wait=on_wait)
    return await ensure_topics(settings)


async def topic_exists(settings: Settings, topic: str) -> bool:
    """Whether ``topic`` exists (without a metadata request that could create it)."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        return topic in await admin.list_topics()
    finally:
        await admin.close()
