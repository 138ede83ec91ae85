"""Broker and topic faults, on a throwaway development broker of the test's own (free
ports, data in tmp_path) so it can be stopped without touching the shared one:

* a 30-second broker outage mid-stream: nothing lost, nothing doubled, and the
  client libraries' connection errors logged at a bounded rate;
* an output topic deleted while the worker runs (the broker does not re-create
  it): the worker exits with a clear message instead of stalling, and SIGTERM
  stops a worker stuck on it within ``shutdown_timeout_s``.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.errors import KafkaError

from memberstream.cli.devbroker import DevBroker
from memberstream.config import Settings
from memberstream.streams.kafka_io import delete_topics, group_lag
from memberstream.streams.worker_process import WorkerProcess
from memberstream.testing import produce_records, raw_records, read_outputs, wait_processed

from .brokers import throwaway_broker
from .conftest import make_namespace
from .harness import assert_same_profiles, expected
from .test_pipeline import workload

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("java") is None or shutil.which("mvn") is None,
        reason="needs java and mvn on PATH",
    ),
]

OUTAGE_S = 30


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevBroker]:
    dev = throwaway_broker(tmp_path_factory.mktemp("faulty-broker"))
    dev.start()
    try:
        yield dev
    finally:
        dev.stop(timeout=30)


def _bootstrap(dev: DevBroker) -> str:
    return f"{dev.settings.host}:{dev.settings.port}"


def _lag(settings: Settings) -> int:
    """Records not yet committed; -1 while the group coordinator is not there yet."""
    try:
        return asyncio.run(group_lag(settings, settings.app_id, settings.topics.inputs()))
    except KafkaError as exc:
        if not exc.retriable:
            raise
        return -1


def test_a_30_second_outage_loses_nothing_doubles_nothing_and_logs_little(
    own_broker: DevBroker, tmp_path: Path
) -> None:
    # Small batches keep the worker in the stream for several seconds, so that the
    # committed lag (polled below) is seen between start and end: with 500-record
    # batches a fast worker took all 6,000 events between two polls.
    settings = make_namespace(
        _bootstrap(own_broker),
        tmp_path,
        store="rocksdb://",
        batch={"send_timeout_s": 120, "max_batch": 25},
    )
    events = workload(6000, seed=17)
    produce_records(settings, raw_records(settings, events))
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # take the broker away mid-stream
            assert worker.running, worker.log_tail()
            if 0 < _lag(settings) < len(events) * 0.8:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the worker never got into the stream")
        assert own_broker.stop(timeout=30)
        time.sleep(OUTAGE_S)
        assert worker.running, f"the worker died in the outage:\n{worker.log_tail()}"
        own_broker.start()
        wait_processed(settings, worker, 240)
    finally:
        worker.stop()

    out = read_outputs(settings)
    want = expected(settings, events)
    assert out.dead_letters == []
    assert out.tier_updates == want.tier_updates  # none lost, none different
    assert_same_profiles(settings, out.profiles, want.profiles)  # nothing counted twice
    lines = worker.log_path.read_text(errors="replace").splitlines()
    assert len(lines) < 1500, f"{len(lines)} log lines for a {OUTAGE_S} s outage"


def worker_past_a_deleted_topic(settings: Settings, tmp_path: Path) -> WorkerProcess:
    """A worker that caught up, then met new events after member.profiles was deleted
    (the broker does not re-create it)."""
    events = workload(400, seed=19)
    produce_records(settings, raw_records(settings, events[:200]))
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        wait_processed(settings, worker, 120)
        asyncio.run(delete_topics(settings, [settings.topics.member_profiles]))
        produce_records(settings, raw_records(settings, events[200:]))
    except BaseException:
        worker.kill()
        raise
    return worker


def test_a_deleted_output_topic_stops_the_worker_with_a_clear_message(
    own_broker: DevBroker, tmp_path: Path
) -> None:
    settings = make_namespace(
        _bootstrap(own_broker), tmp_path, batch={"send_timeout_s": 5}, inference={"enabled": False}
    )
    worker = worker_past_a_deleted_topic(settings, tmp_path)
    try:
        assert worker.proc is not None
        code = worker.proc.wait(timeout=90)  # it exits on its own, it does not stall
    finally:
        worker.stop()
    assert code == 75, worker.log_tail()
    log = worker.log_path.read_text(errors="replace")
    assert "batch failed, exiting without committing it" in log
    assert settings.topics.member_profiles in log
    assert _lag(settings) > 0  # the failed batch was not committed


def test_sigterm_stops_a_stuck_worker_within_the_shutdown_timeout(
    own_broker: DevBroker, tmp_path: Path
) -> None:
    settings = make_namespace(
        _bootstrap(own_broker),
        tmp_path,
        shutdown_timeout_s=8,
        batch={"send_timeout_s": 600},  # stuck on the missing topic far longer than that
        inference={"enabled": False},
    )
    worker = worker_past_a_deleted_topic(settings, tmp_path)
    try:
        time.sleep(5)  # the next batch is now waiting for the missing topic
        assert worker.running, worker.log_tail()
        started = time.monotonic()
        assert worker.proc is not None
        worker.proc.terminate()
        worker.proc.wait(timeout=60)
        took = time.monotonic() - started
    finally:
        worker.kill()
    assert took < settings.shutdown_timeout_s + 5, f"SIGTERM took {took:.1f} s"
