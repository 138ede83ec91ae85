"""What the output sink hands to the producer, how it waits for delivery, and what a
dead letter keeps of a bad record."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from types import SimpleNamespace

import orjson
import pytest
from pydantic import ValidationError

from memberstream.config import DeadLetterSettings, Settings
from memberstream.core.dead_letters import dead_letter_for
from memberstream.core.roles import Emit
from memberstream.schemas.codec import DecodeFailure
from memberstream.schemas.outputs import DeadLetter
from memberstream.streams.outputs import OutputNotDelivered, OutputSink


class RecordingProducer:
    """Takes every record; ``outcome(topic, attempt)`` decides each delivery: None
    (acknowledged), an exception (refused) or "hang" (never acknowledged)."""

    def __init__(self, outcome=None) -> None:  # type: ignore[no-untyped-def]
        self.sent: list[tuple] = []
        self.outcome = outcome or (lambda topic, attempt: None)

    async def send(self, topic, key, value, partition, timestamp, headers):  # type: ignore[no-untyped-def]
        self.sent.append((topic, key, value, partition, timestamp, headers))
        fut = asyncio.get_running_loop().create_future()
        result = self.outcome(topic, len(self.sent))
        if isinstance(result, BaseException):
            fut.set_exception(result)
        elif result != "hang":
            fut.set_result(None)
        return fut


def sink_for(producer: RecordingProducer, **overrides: object) -> OutputSink:
    settings = Settings(**overrides)  # type: ignore[arg-type]
    return OutputSink(SimpleNamespace(producer=producer), settings)  # type: ignore[arg-type]


def message(value: bytes | None, key: bytes | None = b"m9") -> SimpleNamespace:
    return SimpleNamespace(
        topic="events.clicks",
        partition=2,
        offset=41,
        timestamp=870_000_000.0,
        key=key,
        value=value,
    )


async def test_outputs_are_keyed_by_member_and_not_stamped_with_event_time() -> None:
    """Event time lives in the payload. A record stamped with it (say 1997, in a backfill)
    would be deleted by time-based retention as soon as it landed."""
    producer = RecordingProducer()
    sink = sink_for(producer)
    payload = {"output_id": "x", "as_of": "1997-01-01T00:00:00Z"}
    await sink.emit(Emit("member_tiers", "m1", payload))
    await sink.drain()
    ((topic, key, value, partition, timestamp, _),) = producer.sent
    assert (topic, key, partition, timestamp) == ("member.tiers", b"m1", None, None)
    assert orjson.loads(value) == payload


async def test_dead_letters_keep_the_original_key_and_bytes() -> None:
    producer = RecordingProducer()
    sink = sink_for(producer)
    await sink.dead_letter(message(b"\xff{"), DecodeFailure("decode", "invalid JSON"))  # type: ignore[arg-type]
    await sink.drain()
    ((topic, key, value, _, timestamp, _),) = producer.sent
    letter = orjson.loads(value)
    assert (topic, key, timestamp) == ("memberstream.dlq", b"m9", None)
    assert letter["value_b64"] == "/3s=" and letter["key_b64"] == "bTk="
    assert (letter["partition"], letter["offset"]) == (2, 41)
    assert letter["timestamp_ms"] == 870_000_000_000
    assert letter["value_truncated"] is False and letter["value_length"] == 2
    assert letter["value_sha256"] == hashlib.sha256(b"\xff{").hexdigest()
    assert sink.dead_letters == 1


async def test_a_value_over_the_cap_is_cut_and_says_so() -> None:
    """A 5 MB record must not make a 7 MB dead letter (over the producer's limit)."""
    producer = RecordingProducer()
    sink = sink_for(producer, dead_letters={"max_value_bytes": 1000, "max_key_bytes": 8})
    value = bytes(range(256)) * 20_000  # 5.1 MB
    key = b"k" * 100
    await sink.dead_letter(message(value, key), DecodeFailure("decode", "too large"))  # type: ignore[arg-type]
    await sink.drain()
    ((_, sent_key, raw, *_),) = producer.sent
    assert len(raw) < 4000 and sent_key == b"k" * 8
    letter = DeadLetter.model_validate_json(raw)
    assert letter.value_truncated and letter.value_length == len(value)
    assert base64.b64decode(letter.value_b64 or "") == value[:1000]
    assert letter.value_sha256 == hashlib.sha256(value).hexdigest()
    assert letter.key_truncated and letter.key_length == 100
    assert base64.b64decode(letter.key_b64 or "") == b"k" * 8


def test_reason_and_errors_are_capped() -> None:
    conf = DeadLetterSettings(max_reason_chars=50, max_errors=3)
    errors = [{"field": f"f{i}", "message": "x" * 500} for i in range(5000)]
    failure = DecodeFailure("validation", "; ".join(e["field"] for e in errors), errors)
    letter = dead_letter_for("t", 0, 1, None, None, b"{}", failure, conf)
    assert len(letter.reason) < 80 and letter.reason.endswith("chars)")
    assert len(letter.errors) == 4 and letter.errors[-1]["message"] == "4997 more errors not kept"
    assert all(len(e["message"]) <= 50 for e in letter.errors)


def test_a_cap_that_would_not_fit_a_request_is_refused() -> None:
    with pytest.raises(ValidationError, match="request limit"):
        DeadLetterSettings(max_value_bytes=900_000)


async def test_drain_waits_for_every_acknowledgement() -> None:
    producer = RecordingProducer()
    sink = sink_for(producer)
    for i in range(5):
        await sink.emit(Emit("member_profiles", f"m{i}", {"i": i}))
    await sink.drain()
    await sink.drain()  # nothing pending: returns at once
    assert len(producer.sent) == 5


async def test_a_refused_output_fails_the_batch_with_the_reason() -> None:
    producer = RecordingProducer(lambda topic, n: RuntimeError("TopicAuthorizationFailed"))
    sink = sink_for(producer)
    await sink.emit(Emit("member_tiers", "m1", {}))
    with pytest.raises(OutputNotDelivered, match=r"member\.tiers.*TopicAuthorizationFailed"):
        await sink.drain()


async def test_an_unacknowledged_output_fails_the_batch_in_time() -> None:
    producer = RecordingProducer(lambda topic, n: "hang")
    sink = sink_for(producer, batch={"send_timeout_s": 0.2})
    await sink.emit(Emit("member_tiers", "m1", {}))
    with pytest.raises(OutputNotDelivered, match=r"not acknowledged.*send_timeout_s"):
        await asyncio.wait_for(sink.drain(), 5)


async def test_a_send_that_blocks_fails_the_batch_in_time() -> None:
    """aiokafka waits for a missing topic's metadata inside send()."""

    class Blocking(RecordingProducer):
        async def send(self, *args):  # type: ignore[no-untyped-def]
            await asyncio.sleep(3600)

    sink = sink_for(Blocking(), batch={"send_timeout_s": 0.2})
    with pytest.raises(OutputNotDelivered, match=r"member\.tiers.*timed out"):
        await asyncio.wait_for(sink.emit(Emit("member_tiers", "m1", {})), 5)


async def test_a_failed_dead_letter_is_retried_until_it_is_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A DLQ write that fails is the broker's problem, not the record's: retry, say why,
    never give up the record or crash."""

    def outcome(topic: str, n: int) -> object:  # the first four deliveries are refused
        return RuntimeError(f"broker says no #{n}") if n <= 4 else None

    producer = RecordingProducer(outcome)
    sink = sink_for(producer, dead_letters={"retry_initial_s": 0.01, "retry_max_s": 0.02})
    await sink.dead_letter(message(b"bad"), DecodeFailure("decode", "invalid JSON"))  # type: ignore[arg-type]
    await asyncio.wait_for(sink.drain(), 5)
    assert len(producer.sent) == 5  # four refused, the fifth acknowledged
    assert {orjson.loads(v)["output_id"] for _, _, v, *_ in producer.sent} == {
        orjson.loads(producer.sent[0][2])["output_id"]
    }  # the same dead letter each time
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 4 and "broker says no" in retries[0].getMessage()
