"""What the output sink hands to the producer."""

from __future__ import annotations

from types import SimpleNamespace

import orjson

from memberstream.config import TopicNames
from memberstream.schemas.codec import DecodeFailure
from memberstream.streams.member_processor import Emit
from memberstream.streams.outputs import OutputSink


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple] = []

    async def send(self, topic, key, value, partition, timestamp, headers):  # type: ignore[no-untyped-def]
        self.sent.append((topic, key, value, partition, timestamp, headers))


async def test_outputs_are_keyed_by_member_and_not_stamped_with_event_time() -> None:
    """Event time lives in the payload. A record stamped with it (say 1997, in a backfill)
    would be deleted by time-based retention as soon as it landed."""
    producer = RecordingProducer()
    sink = OutputSink(SimpleNamespace(producer=producer), TopicNames())  # type: ignore[arg-type]
    payload = {"output_id": "x", "as_of": "1997-01-01T00:00:00Z"}
    await sink.emit(Emit("member_tiers", "m1", payload))
    ((topic, key, value, partition, timestamp, _),) = producer.sent
    assert (topic, key, partition, timestamp) == ("member.tiers", b"m1", None, None)
    assert orjson.loads(value) == payload


async def test_dead_letters_keep_the_original_key_and_bytes() -> None:
    producer = RecordingProducer()
    sink = OutputSink(SimpleNamespace(producer=producer), TopicNames())  # type: ignore[arg-type]
    message = SimpleNamespace(
        topic="events.clicks",
        partition=2,
        offset=41,
        timestamp=870_000_000.0,
        key=b"m9",
        value=b"\xff{",
    )
    await sink.dead_letter(message, DecodeFailure("decode", "invalid JSON"))  # type: ignore[arg-type]
    ((topic, key, value, _, timestamp, _),) = producer.sent
    letter = orjson.loads(value)
    assert (topic, key, timestamp) == ("memberstream.dlq", b"m9", None)
    assert letter["value_b64"] == "/3s=" and letter["key_b64"] == "bTk="
    assert (letter["partition"], letter["offset"]) == (2, 41)
    assert letter["timestamp_ms"] == 870_000_000_000
    assert sink.dead_letters == 1
