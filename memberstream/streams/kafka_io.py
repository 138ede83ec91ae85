"""Plain aiokafka helpers: create topics, produce events, read a topic to the end,
grant ACLs.

Used by the CLI (``topics create``, ``produce``, ``consume``), the demo, the
benchmark and the integration tests. Every helper takes the :class:`Settings`
(or a :class:`KafkaConnection`), never a bare bootstrap string, so every client
it makes carries the connection's security settings (TLS, SASL).

Errors: nothing listening is :class:`KafkaUnavailable`; a broker that refuses
us (wrong password, TLS or SASL settings that do not match its listener) is
:class:`KafkaAuthError`, raised at once since retrying cannot help; an ACL that
denies an operation is :class:`KafkaNotAuthorized`. Their messages say what is
wrong and which setting to check.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka import errors as kerrors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from aiokafka.protocol.admin import CreateAclsRequest
from aiokafka.protocol.metadata import MetadataRequest

from memberstream.config import Settings
from memberstream.config.kafka import KafkaSecuritySettings
from memberstream.errors import AuthError, KafkaUnavailableError
from memberstream.schemas.codec import encode
from memberstream.schemas.events import Envelope

T = TypeVar("T")

_ENV = "MEMBERSTREAM_KAFKA__"
PROBE_TIMEOUT_S = 10.0


class KafkaUnavailable(KafkaUnavailableError):
    """No Kafka answers at the bootstrap servers (nothing listens, or it is starting)."""


class KafkaAuthError(KafkaUnavailable, AuthError):
    """Kafka answers but will not serve us: authentication failed, or the TLS / SASL
    settings do not match its listener. Retrying does not help; the message names the
    setting to check."""

    exit_code = AuthError.exit_code
    hint = AuthError.hint


class KafkaNotAuthorized(KafkaAuthError):
    """Authenticated, but an ACL denies the operation (topic, group or cluster)."""


@dataclass(frozen=True)
class KafkaConnection:
    """Where Kafka is and how to connect to it: what every client here is built from.

    ``KafkaConnection.of(settings)`` takes both from the settings; pass one directly
    to connect with other credentials (a test's second principal, the dev broker's
    admin).
    """

    bootstrap_servers: str
    security: KafkaSecuritySettings = field(default_factory=KafkaSecuritySettings)

    @classmethod
    def of(cls, kafka: Kafka) -> KafkaConnection:
        if isinstance(kafka, KafkaConnection):
            return kafka
        return cls(kafka.kafka_bootstrap_servers, kafka.kafka)

    def client_kwargs(self) -> dict[str, Any]:
        """Bootstrap servers and security arguments for any aiokafka client."""
        return {"bootstrap_servers": self.bootstrap_servers, **self.security.client_kwargs()}

    @property
    def principal(self) -> str:
        """Who the broker will see: ``User:<name>`` for SASL, else ``User:ANONYMOUS``
        (an SSL client certificate's name is only known to the broker)."""
        if self.security.uses_sasl:
            return f"User:{self.security.sasl_username}"
        return "the TLS client" if self.security.ssl_certfile else "User:ANONYMOUS"

    def describe(self) -> str:
        sec = self.security
        how = sec.security_protocol
        if sec.uses_sasl:
            how += f", {sec.sasl_mechanism} as {sec.sasl_username}"
        return f"{self.bootstrap_servers} ({how})"

    def hosts(self) -> list[tuple[str, int]]:
        """(host, port) of each bootstrap server (port 9092 when not given)."""
        out = []
        for raw in self.bootstrap_servers.split(","):
            entry = raw.strip()
            if entry.startswith("["):  # [IPv6]:port
                host, _, rest = entry[1:].partition("]")
                port = rest.lstrip(":")
            elif entry.count(":") == 1:
                host, port = entry.split(":")
            else:  # no port, or a bare IPv6 address
                host, port = entry, ""
            if host:
                out.append((host, int(port) if port.isdigit() else 9092))
        return out


Kafka: TypeAlias = Settings | KafkaConnection
"""What the helpers take: the settings, or a connection built some other way."""


def connection(kafka: Kafka) -> KafkaConnection:
    return KafkaConnection.of(kafka)


# --- telling "not there" from "refused" -------------------------------------------------------


async def _speaks_tls(host: str, port: int) -> bool:
    """Whether ``host:port`` completes a TLS handshake (certificate not checked)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context), PROBE_TIMEOUT_S
        )
    except (OSError, TimeoutError, ssl.SSLError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True


async def _speaks_plaintext_kafka(host: str, port: int) -> bool:
    """Whether ``host:port`` answers a plaintext Kafka ApiVersions request."""
    try:
        probe = await create_conn(host, port, request_timeout_ms=int(PROBE_TIMEOUT_S * 1000))
    except (KafkaError, OSError, TimeoutError):
        return False
    probe.close()
    return True


def _refusal(kafka: KafkaConnection, host: str, port: int, exc: BaseException) -> str | None:
    """What a failed connect/login means, when the broker answered and refused."""
    sec, where = kafka.security, f"{host}:{port}"
    if isinstance(exc, kerrors.SaslAuthenticationFailed):
        source = "SASL_PASSWORD_FILE" if sec.sasl_password_file else "SASL_PASSWORD"
        return (
            f"authentication failed: Kafka at {where} refused SASL user "
            f"{sec.sasl_username!r} ({sec.sasl_mechanism}): {exc}. Check "
            f"{_ENV}SASL_USERNAME, {_ENV}{source} and {_ENV}SASL_MECHANISM"
        )
    if isinstance(exc, kerrors.UnsupportedSaslMechanismError | kerrors.IllegalSaslStateError):
        return (
            f"authentication failed: Kafka at {where} does not take SASL "
            f"{sec.sasl_mechanism} on that listener ({type(exc).__name__}: {exc}). Check "
            f"{_ENV}SASL_MECHANISM and {_ENV}SECURITY_PROTOCOL (a listener without SASL "
            "wants PLAINTEXT or SSL)"
        )
    if isinstance(exc, kerrors.AuthenticationFailedError) or (
        isinstance(exc, kerrors.BrokerResponseError) and not exc.retriable
    ):
        return f"Kafka at {where} refused the connection ({type(exc).__name__}: {exc})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"TLS: the certificate of Kafka at {where} did not verify "
            f"({exc.verify_message}). Check {_ENV}SSL_CAFILE (the CA that signed the "
            f"broker's certificate) and {_ENV}SSL_CHECK_HOSTNAME"
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"TLS handshake with Kafka at {where} failed ({exc.reason or exc}): is that "
            f"listener TLS at all? Check {_ENV}SECURITY_PROTOCOL (SSL or SASL_SSL only for "
            "a TLS listener)"
        )
    return None


async def diagnose(kafka: Kafka) -> KafkaAuthError | None:
    """Connect to each bootstrap server as the clients would, and return what refuses
    us, if anything; None when every server is unreachable or all is well.

    aiokafka's bootstrap logs the cause and raises a generic "Unable to bootstrap";
    this finds the cause again: a failed login, a certificate that does not verify, a
    TLS listener spoken to in plaintext (the broker just hangs up), or a SASL listener
    spoken to without SASL (the broker hangs up at the first real request).
    """
    conn = connection(kafka)
    sec = conn.security
    for host, port in conn.hosts():
        try:
            probe = await create_conn(
                host, port, request_timeout_ms=int(PROBE_TIMEOUT_S * 1000),
                **sec.client_kwargs(),
            )  # fmt: skip
        except ConnectionRefusedError:
            continue
        except (KafkaError, ssl.SSLError) as exc:
            text = _refusal(conn, host, port, exc)
            if text is None and not sec.uses_ssl and await _speaks_tls(host, port):
                text = (
                    f"Kafka at {host}:{port} speaks TLS and closed the {sec.security_protocol} "
                    f"connection: set {_ENV}SECURITY_PROTOCOL=SASL_SSL (or SSL), with "
                    f"{_ENV}SSL_CAFILE and, for SASL, {_ENV}SASL_USERNAME and "
                    f"{_ENV}SASL_PASSWORD (or __SASL_PASSWORD_FILE)"
                )
            if text is not None:
                return KafkaAuthError(text)
            continue
        except (OSError, TimeoutError):
            if sec.uses_ssl and await _speaks_plaintext_kafka(host, port):
                return KafkaAuthError(
                    f"Kafka at {host}:{port} does not speak TLS (it answers plaintext "
                    f"requests) and hung up on the {sec.security_protocol} client: check "
                    f"{_ENV}SECURITY_PROTOCOL (PLAINTEXT or SASL_PLAINTEXT for that listener) "
                    "and KAFKA_BOOTSTRAP_SERVERS"
                )
            continue
        try:
            await probe.send(MetadataRequest([]))
        except (KafkaConnectionError, TimeoutError):
            if not sec.uses_sasl:
                return KafkaAuthError(
                    f"Kafka at {host}:{port} hung up on the {sec.security_protocol} client "
                    "after the handshake: that listener wants SASL authentication. Set "
                    f"{_ENV}SECURITY_PROTOCOL=SASL_SSL (or SASL_PLAINTEXT), "
                    f"{_ENV}SASL_USERNAME and {_ENV}SASL_PASSWORD (or __SASL_PASSWORD_FILE)"
                )
        except KafkaError:
            pass
        finally:
            probe.close()
        return None
    return None


async def _start(client: Any, kafka: KafkaConnection) -> None:
    """``client.start()``; a refusal becomes :class:`KafkaAuthError` (and the client is
    closed), anything else is raised as it is."""
    try:
        await client.start()
    except (KafkaError, OSError, TimeoutError):
        with contextlib.suppress(Exception):
            await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
        problem = await diagnose(kafka)
        if problem is not None:
            raise problem from None
        raise


_AUTHZ = (
    kerrors.TopicAuthorizationFailedError,
    kerrors.GroupAuthorizationFailedError,
    kerrors.ClusterAuthorizationFailedError,
    kerrors.TransactionalIdAuthorizationFailed,
)


def not_authorized(kafka: Kafka, action: str, exc: BaseException) -> KafkaNotAuthorized:
    """A clear error for an ACL refusal: who, what, on which resource."""
    conn = connection(kafka)
    if isinstance(exc, kerrors.TopicAuthorizationFailedError) and exc.args:
        topics = exc.args[0]
        named = ", ".join(sorted(map(str, topics))) if isinstance(topics, set) else str(topics)
        if named not in action:
            action += f" on topic {named}"
    return KafkaNotAuthorized(
        f"{conn.principal} is not authorized to {action} on Kafka at "
        f"{conn.bootstrap_servers} ({type(exc).__name__}): an admin must grant that "
        "principal the ACL (or check MEMBERSTREAM_KAFKA__SASL_USERNAME)"
    )


async def _authorized(kafka: Kafka, action: str, step: Awaitable[T]) -> T:
    """Await ``step``; an ACL refusal becomes :class:`KafkaNotAuthorized`."""
    try:
        return await step
    except _AUTHZ as exc:
        raise not_authorized(kafka, action, exc) from exc


def topic_for(event: Envelope, settings: Settings) -> str:
    """The input topic an event belongs on, from its type."""
    return settings.topics.for_event(event.type)  # type: ignore[attr-defined]


async def wait_for_kafka(kafka: Kafka, timeout_s: float = 30.0) -> None:
    """Return once the cluster answers a metadata request.

    Raise :class:`KafkaUnavailable` when none does within ``timeout_s``, and
    :class:`KafkaAuthError` at once when one answers but refuses us.
    """
    conn = connection(kafka)
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(**conn.client_kwargs(), request_timeout_ms=5000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (TimeoutError, KafkaConnectionError, OSError) as exc:
            last = exc
            problem = await diagnose(conn)
            if problem is not None:
                raise problem from None
            await asyncio.sleep(0.5)
        finally:
            await admin.close()
    raise KafkaUnavailable(
        f"no Kafka at {conn.bootstrap_servers} after {timeout_s:.0f}s ({last}); start one with "
        "`memberstream broker start` or set KAFKA_BOOTSTRAP_SERVERS"
    )


async def create_topics(settings: Settings, only: Sequence[str] | None = None) -> dict[str, str]:
    """Create every memberstream topic (or those of them in ``only``); compacted ones get
    cleanup.policy=compact, and labels.feedback keeps its records forever (the learning
    loop's labels).

    Returns topic → "created" | "exists".
    """
    conn = connection(settings)
    await wait_for_kafka(conn)
    admin = AIOKafkaAdminClient(**conn.client_kwargs())
    await _start(admin, conn)
    result: dict[str, str] = {}
    try:
        existing = set(await admin.list_topics())
        compacted = settings.topics.compacted()
        for name in settings.topics.all():
            if only is not None and name not in only:
                continue
            if name in existing:
                result[name] = "exists"
                continue
            configs = {"cleanup.policy": "compact"} if name in compacted else {}
            if name == settings.topics.feedback:
                configs = {"retention.ms": "-1"}
            topic = NewTopic(name, settings.partitions, settings.replication_factor, None, configs)
            result[name] = await _create_one(admin, topic, conn)
    finally:
        await admin.close()
    return result


async def delete_topics(kafka: Kafka, names: list[str]) -> None:
    """Delete topics that exist among ``names`` (used to clean up demo runs)."""
    conn = connection(kafka)
    admin = AIOKafkaAdminClient(**conn.client_kwargs())
    await _start(admin, conn)
    try:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def _create_one(admin: AIOKafkaAdminClient, topic: NewTopic, kafka: Kafka) -> str:
    """Create one topic; "exists" when the broker says it already does (metadata can lag)."""
    try:
        response = await admin.create_topics([topic])
    except TopicAlreadyExistsError:
        return "exists"
    for _name, code, *rest in response.topic_errors:
        if code == TopicAlreadyExistsError.errno:
            return "exists"
        error = kerrors.for_code(code) if code else None
        if error is not None and issubclass(error, _AUTHZ):
            raise not_authorized(kafka, f"create topic {topic.name} (CREATE)", error())
        if code:
            raise KafkaError(f"creating topic {topic.name} failed: error {code} {rest}")
    return "created"


@dataclass
class ProduceReport:
    sent: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else float("inf")


async def produce_events(
    settings: Settings,
    events: Iterable[Envelope],
    rate: float | None = None,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 10_000,
) -> ProduceReport:
    """Send events keyed by member_id to their topics; optionally paced to ``rate``/s."""
    conn = connection(settings)
    producer = AIOKafkaProducer(
        **conn.client_kwargs(),
        acks="all",
        linger_ms=10,
        max_batch_size=256 * 1024,
        enable_idempotence=True,
    )
    await _start(producer, conn)
    started = time.monotonic()
    sent = 0
    try:
        pending = []
        for event in events:
            topic = topic_for(event, settings)
            fut = await _authorized(
                conn,
                "write (WRITE)",
                producer.send(topic, encode(event), key=event.member_id.encode("utf-8")),
            )
            pending.append(fut)
            sent += 1
            if len(pending) >= 5000:
                await _authorized(conn, "write (WRITE)", asyncio.gather(*pending))
                pending.clear()
            if progress is not None and sent % progress_every == 0:
                progress(sent)
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        if pending:
            await _authorized(conn, "write (WRITE)", asyncio.gather(*pending))
    finally:
        await producer.stop()
    return ProduceReport(sent, time.monotonic() - started)


async def produce_raw(
    kafka: Kafka, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]
) -> int:
    """Send raw (key, value) byte pairs as they are: for malformed-input tests and replays."""
    conn = connection(kafka)
    producer = AIOKafkaProducer(**conn.client_kwargs(), acks="all")
    await _start(producer, conn)
    n = 0
    action = f"write to topic {topic} (WRITE)"
    try:
        futs = [
            await _authorized(conn, action, producer.send(topic, value, key=key))
            for key, value in records
        ]
        await _authorized(conn, action, asyncio.gather(*futs))
        n = len(futs)
    finally:
        await producer.stop()
    return n


async def _partitions_of(
    consumer: AIOKafkaConsumer, topic: str, kafka: Kafka
) -> list[TopicPartition]:
    """The topic's partitions, refreshing metadata once when the topic is new to the client.

    A topic the principal may not describe is :class:`KafkaNotAuthorized`, not "empty".
    """
    partitions = consumer.partitions_for_topic(topic)
    if partitions is None:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    if not partitions:
        await _check_describable(consumer, topic, kafka)
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def _check_describable(consumer: AIOKafkaConsumer, topic: str, kafka: Kafka) -> None:
    """An all-topics metadata answer leaves out the topics we may not describe, so a
    missing topic may be a forbidden one: ask for it by name (never auto-creating it)."""
    client = consumer._client
    request = MetadataRequest([topic], allow_auto_topic_creation=False)
    with contextlib.suppress(KafkaError, TimeoutError):
        response = await client.send(client.get_random_node(), request)
        for error_code, name, *_ in response.topics:
            if name == topic and error_code == kerrors.TopicAuthorizationFailedError.errno:
                raise not_authorized(
                    kafka,
                    f"describe topic {topic} (DESCRIBE)",
                    kerrors.TopicAuthorizationFailedError(topic),
                )


async def iter_records(
    kafka: Kafka,
    topic: str,
    from_beginning: bool = True,
    idle_timeout_s: float = 5.0,
    limit: int | None = None,
    to_end: bool = False,
) -> AsyncIterator[ConsumerRecord]:
    """Yield records until ``limit``, no record for ``idle_timeout_s``, or
    (``to_end``) the end offsets as of the start.

    Reads without a consumer group (manual assignment): nothing is committed.
    """
    conn = connection(kafka)
    consumer = AIOKafkaConsumer(
        **conn.client_kwargs(),
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        group_id=None,
    )
    await _start(consumer, conn)
    n = 0
    read = f"read topic {topic} (READ)"
    try:
        tps = await _partitions_of(consumer, topic, conn)
        if not tps:
            return
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        ends = await consumer.end_offsets(tps) if to_end else {}
        while limit is None or n < limit:
            if to_end and all([await consumer.position(tp) >= end for tp, end in ends.items()]):
                return
            batch = await _authorized(
                conn,
                read,
                consumer.getmany(timeout_ms=int(idle_timeout_s * 1000), max_records=5000),
            )
            if not batch:
                return
            for records in batch.values():
                for rec in records:
                    yield rec
                    n += 1
                    if limit is not None and n >= limit:
                        return
    finally:
        await consumer.stop()


async def first_offset_at(
    kafka: Kafka, topic: str, partition: int, offset: int, timeout_s: float = 10.0
) -> int | None:
    """The offset of the first record the broker holds at or after ``offset`` in one
    partition (None: none within ``timeout_s``); records before the log start count as
    deleted, and transaction markers are skipped, as a consumer sees them."""
    conn = connection(kafka)
    consumer = AIOKafkaConsumer(
        **conn.client_kwargs(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await _start(consumer, conn)
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        batch = await consumer.getmany(tp, timeout_ms=int(timeout_s * 1000), max_records=1)
        records = batch.get(tp, [])
        return records[0].offset if records else None
    finally:
        await consumer.stop()


async def committed_offset(kafka: Kafka, group_id: str, topic: str, partition: int) -> int | None:
    """The group's committed offset on one partition, as the broker has it (None: none)."""
    conn = connection(kafka)
    admin = AIOKafkaAdminClient(**conn.client_kwargs())
    await _start(admin, conn)
    try:
        tp = TopicPartition(topic, partition)
        offsets = await admin.list_consumer_group_offsets(group_id, partitions=[tp])
    finally:
        await admin.close()
    meta = offsets.get(tp)
    return None if meta is None or meta.offset < 0 else int(meta.offset)


async def iter_topic(
    kafka: Kafka,
    topic: str,
    from_beginning: bool = True,
    idle_timeout_s: float = 5.0,
    limit: int | None = None,
    to_end: bool = False,
) -> AsyncIterator[tuple[bytes | None, bytes | None, int, int]]:
    """(key, value, partition, offset) of each record :func:`iter_records` yields."""
    async for rec in iter_records(kafka, topic, from_beginning, idle_timeout_s, limit, to_end):
        yield rec.key, rec.value, rec.partition, rec.offset


async def read_json(kafka: Kafka, topic: str, idle_timeout_s: float = 10.0) -> list[dict]:
    """Every record now in ``topic``, decoded as JSON (test and report helper)."""
    records = iter_topic(kafka, topic, idle_timeout_s=idle_timeout_s, to_end=True)
    return [orjson.loads(value) async for _, value, _, _ in records if value is not None]


class GroupOffsets:
    """A consumer group's committed offsets and lag on some topics.

    One admin client and one consumer serve every poll (``async with``), so
    polling costs a request, not a new connection.
    """

    def __init__(self, kafka: Kafka, group_id: str, topics: list[str]) -> None:
        self.conn = connection(kafka)
        self.group_id = group_id
        self.topics = topics
        kwargs = self.conn.client_kwargs()
        self.admin = AIOKafkaAdminClient(**kwargs)
        self.consumer = AIOKafkaConsumer(**kwargs, enable_auto_commit=False)
        self.tps: list[TopicPartition] = []

    async def __aenter__(self) -> GroupOffsets:
        await _start(self.admin, self.conn)
        try:
            await _start(self.consumer, self.conn)
            for topic in self.topics:
                self.tps += await _partitions_of(self.consumer, topic, self.conn)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def _committed(self) -> dict[TopicPartition, int]:
        offsets = await _authorized(
            self.conn,
            f"describe consumer group {self.group_id} (DESCRIBE on the group, on its topics)",
            self.admin.list_consumer_group_offsets(self.group_id, partitions=self.tps),
        )
        return {tp: max(meta.offset, 0) for tp, meta in offsets.items()}

    async def committed(self) -> int:
        """Records committed so far, summed over the partitions."""
        return sum((await self._committed()).values())

    async def lag(self) -> int:
        """Records not yet committed."""
        ends = await self.consumer.end_offsets(self.tps)
        done = await self._committed()
        return sum(max(end - done.get(tp, 0), 0) for tp, end in ends.items())


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    """None: the group never committed on this partition."""
    end: int

    @property
    def lag(self) -> int:
        return max(self.end - (self.committed or 0), 0)


async def group_partition_lag(
    kafka: Kafka, group_id: str, topics: list[str] | None = None
) -> list[PartitionLag]:
    """Per partition of ``topics`` (default: every partition the group committed on),
    the group's committed offset and the end offset."""
    conn = connection(kafka)
    admin = AIOKafkaAdminClient(**conn.client_kwargs())
    consumer = AIOKafkaConsumer(**conn.client_kwargs(), enable_auto_commit=False)
    await _start(admin, conn)
    try:
        await _start(consumer, conn)
        try:
            tps: list[TopicPartition] | None = None
            if topics is not None:
                tps = [tp for t in topics for tp in await _partitions_of(consumer, t, conn)]
            offsets = await _authorized(
                conn,
                f"describe consumer group {group_id} (DESCRIBE on the group, on its topics)",
                admin.list_consumer_group_offsets(group_id, partitions=tps),
            )
            if tps is None:
                tps = sorted(offsets)
            ends = await consumer.end_offsets(tps) if tps else {}
        finally:
            await consumer.stop()
    finally:
        await admin.close()
    out = []
    for tp in sorted(tps, key=lambda t: (t.topic, t.partition)):
        meta = offsets.get(tp)
        committed = meta.offset if meta is not None and meta.offset >= 0 else None
        out.append(PartitionLag(tp.topic, tp.partition, committed, int(ends.get(tp, 0))))
    return out


async def group_lag(kafka: Kafka, group_id: str, topics: list[str]) -> int:
    """Records in ``topics`` not yet committed by consumer group ``group_id``."""
    async with GroupOffsets(kafka, group_id, topics) as offsets:
        return await offsets.lag()


async def wait_caught_up(
    kafka: Kafka,
    group_id: str,
    topics: list[str],
    timeout_s: float,
    poll_s: float = 0.5,
    on_poll: Callable[[int], None] | None = None,
) -> float:
    """Wait until the group has committed every record in ``topics``; return the time it took."""
    started = time.monotonic()
    async with GroupOffsets(kafka, group_id, topics) as offsets:
        while True:
            try:
                lag = await offsets.lag()
            except KafkaError as exc:  # e.g. the group coordinator is still being elected
                if not exc.retriable and not isinstance(exc, KafkaConnectionError):
                    raise
                lag = -1
            if on_poll is not None:
                on_poll(lag)
            if lag == 0:
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                behind = "unknown" if lag < 0 else str(lag)
                raise TimeoutError(
                    f"group {group_id} still {behind} records behind after {timeout_s}s"
                )
            await asyncio.sleep(poll_s)


# --- ACLs ---------------------------------------------------------------------------------------

ResourceType = Literal["topic", "group", "cluster", "transactional_id"]
Operation = Literal[
    "all", "read", "write", "create", "delete", "alter", "describe",
    "describe_configs", "alter_configs", "idempotent_write",
]  # fmt: skip
_RESOURCE_CODES = {"topic": 2, "group": 3, "cluster": 4, "transactional_id": 5}
_PATTERN_CODES = {"literal": 3, "prefixed": 4}
_OPERATION_CODES = {
    "all": 2, "read": 3, "write": 4, "create": 5, "delete": 6, "alter": 7, "describe": 8,
    "describe_configs": 10, "alter_configs": 11, "idempotent_write": 12,
}  # fmt: skip
_PERMISSION_CODES = {"deny": 2, "allow": 3}


@dataclass(frozen=True)
class Acl:
    """One ACL entry: ``principal`` may (``allow``) or may not (``deny``) do
    ``operation`` on a resource named ``name`` (or, ``prefixed``, starting with it).

    Kafka's authorizer lets a deny win over any allow.
    """

    principal: str  # e.g. "User:memberstream"
    operation: Operation
    resource_type: ResourceType
    name: str
    pattern: Literal["literal", "prefixed"] = "literal"
    permission: Literal["allow", "deny"] = "allow"
    host: str = "*"

    def request(self) -> CreateAclsRequest:
        return CreateAclsRequest(
            _RESOURCE_CODES[self.resource_type],
            "kafka-cluster" if self.resource_type == "cluster" else self.name,
            _PATTERN_CODES[self.pattern],
            self.principal,
            self.host,
            _OPERATION_CODES[self.operation],
            _PERMISSION_CODES[self.permission],
        )


def grant(
    principal: str,
    resource_type: ResourceType,
    name: str,
    *operations: Operation,
    prefixed: bool = False,
) -> list[Acl]:
    """Allow ``principal`` each of ``operations`` on a topic, group, ... (``prefixed``:
    every one whose name starts with ``name``)."""
    pattern: Literal["literal", "prefixed"] = "prefixed" if prefixed else "literal"
    return [Acl(principal, op, resource_type, name, pattern) for op in operations]


def deny(
    principal: str,
    resource_type: ResourceType,
    name: str,
    *operations: Operation,
    prefixed: bool = False,
) -> list[Acl]:
    """Forbid ``principal`` each of ``operations`` (wins over any allow)."""
    pattern: Literal["literal", "prefixed"] = "prefixed" if prefixed else "literal"
    return [Acl(principal, op, resource_type, name, pattern, "deny") for op in operations]


APP_TOPIC_OPERATIONS: tuple[Operation, ...] = (
    "read", "write", "create", "delete", "describe", "describe_configs",
)  # fmt: skip
APP_GROUP_OPERATIONS: tuple[Operation, ...] = ("read", "describe", "delete")


def app_acls(
    principal: str, topic_prefixes: Iterable[str], group_prefixes: Iterable[str]
) -> list[Acl]:
    """What a stream app needs (the Kafka Streams set): read, write, create, delete and
    describe the topics it owns (inputs, outputs, changelogs: by prefix), join its
    consumer groups."""
    acls: list[Acl] = []
    for prefix in topic_prefixes:
        acls += grant(principal, "topic", prefix, *APP_TOPIC_OPERATIONS, prefixed=True)
    for prefix in group_prefixes:
        acls += grant(principal, "group", prefix, *APP_GROUP_OPERATIONS, prefixed=True)
    return acls


async def create_acls(kafka: Kafka, acls: Iterable[Acl]) -> None:
    """Create ``acls`` (an existing one is left as it is); needs a principal allowed to
    ALTER the cluster (a super user). aiokafka has no ACL API: this sends CreateAcls."""
    conn = connection(kafka)
    admin = AIOKafkaAdminClient(**conn.client_kwargs())
    await _start(admin, conn)
    try:
        for acl in acls:
            response = await admin._send_request(acl.request())
            for code, message in response.creation_responses:
                if not code:
                    continue
                error = kerrors.for_code(code)
                if issubclass(error, _AUTHZ):
                    raise not_authorized(conn, "create ACLs (ALTER on the cluster)", error())
                raise KafkaError(f"creating ACL {acl} failed: {error.__name__}: {message}")
    finally:
        await admin.close()
