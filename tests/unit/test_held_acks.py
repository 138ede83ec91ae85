"""``held_acks``: a batch's messages are acked only if processing the batch completed.

Faust's ``Stream.take_events`` acks every event of a batch in a ``finally``, also
when the loop body raised or was cancelled. ``held_acks`` marks the messages
acked up front (so that ``finally`` is a no-op) and releases them only after a
normal exit.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types.tuples import ConsumerMessage, Message

from memberstream.streams.faust_batches import held_acks


class Boom(Exception):
    pass


def fake_events(n: int) -> list[Any]:
    return [SimpleNamespace(message=SimpleNamespace(acked=False, offset=i)) for i in range(n)]


class RecordingConsumer:
    """Stands in for faust's Consumer: records ``ack`` calls, marks the message acked."""

    def __init__(self) -> None:
        self.acked: list[Message] = []

    def ack(self, message: Message) -> bool:
        self.acked.append(message)
        message.acked = True
        return True


def consumer_message(offset: int, topic: str = "events.purchases") -> ConsumerMessage:
    msg = ConsumerMessage(topic, 0, offset, 0.0, 0, None, b"m-1", b"{}", None)
    msg.incref()  # one stream holds it, as the conductor does when delivering it
    return msg


# --- with plain fakes -------------------------------------------------------------------


def test_messages_read_acked_inside_the_block() -> None:
    events = fake_events(3)
    with held_acks(events):
        assert [ev.message.acked for ev in events] == [True, True, True]


def test_normal_exit_releases_the_messages() -> None:
    events = fake_events(3)
    with held_acks(events):
        pass
    assert [ev.message.acked for ev in events] == [False, False, False]


def test_exception_keeps_messages_held_and_propagates() -> None:
    events = fake_events(3)
    with pytest.raises(Boom, match="batch failed"), held_acks(events):
        raise Boom("batch failed")
    assert [ev.message.acked for ev in events] == [True, True, True]


def test_exception_after_partial_work_keeps_every_message_held() -> None:
    events = fake_events(4)
    with pytest.raises(ValueError), held_acks(events):
        events[0].message.acked = False  # whatever the block did to some of them
        raise ValueError("bad")
    # only messages the block itself touched can differ: held_acks releases nothing
    assert [ev.message.acked for ev in events[1:]] == [True, True, True]


def test_cancellation_keeps_messages_held() -> None:
    events = fake_events(2)

    async def body() -> None:
        with held_acks(events):
            await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.ensure_future(body())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert [ev.message.acked for ev in events] == [True, True]


def test_empty_batch() -> None:
    with held_acks([]):
        pass


def test_held_acks_is_reusable_per_batch() -> None:
    first, second = fake_events(2), fake_events(2)
    with pytest.raises(Boom), held_acks(first):
        raise Boom
    with held_acks(second):
        pass
    assert [ev.message.acked for ev in first] == [True, True]
    assert [ev.message.acked for ev in second] == [False, False]


# --- with faust's own Message.ack -------------------------------------------------------


def test_plain_faust_message_starts_unacked() -> None:
    msg = Message("t", 0, 5, 0.0, 0, None, b"k", b"v", None)
    assert msg.acked is False
    events = [SimpleNamespace(message=msg)]
    with held_acks(events):
        assert msg.acked is True
    assert msg.acked is False


def test_faust_ack_inside_block_is_a_no_op() -> None:
    consumer = RecordingConsumer()
    msg = consumer_message(10)
    with held_acks([SimpleNamespace(message=msg)]):
        assert msg.ack(consumer) is False
        assert consumer.acked == []
        assert msg.refcount == 1  # not even decremented: the ack never happened


def test_faust_ack_after_normal_exit_reaches_the_consumer() -> None:
    consumer = RecordingConsumer()
    msgs = [consumer_message(i) for i in range(3)]
    with held_acks([SimpleNamespace(message=m) for m in msgs]):
        pass
    # what take_events' finally does once the batch is done
    assert [m.ack(consumer) for m in msgs] == [True, True, True]
    assert consumer.acked == msgs
    assert [m.refcount for m in msgs] == [0, 0, 0]
    # and a second ack of the same message does nothing
    assert msgs[0].ack(consumer) is False
    assert len(consumer.acked) == 3


def test_faust_ack_after_failed_batch_never_reaches_the_consumer() -> None:
    consumer = RecordingConsumer()
    msgs = [consumer_message(i) for i in range(3)]
    with pytest.raises(Boom), held_acks([SimpleNamespace(message=m) for m in msgs]):
        raise Boom
    # take_events' finally acks anyway: nothing may be marked safe to commit
    assert [m.ack(consumer) for m in msgs] == [False, False, False]
    assert consumer.acked == []
    assert all(m.acked for m in msgs)


def test_unheld_faust_message_is_acked_normally() -> None:
    """Control: without held_acks the fake consumer does see the ack."""
    consumer = RecordingConsumer()
    msg = consumer_message(1)
    assert msg.ack(consumer) is True
    assert consumer.acked == [msg]
