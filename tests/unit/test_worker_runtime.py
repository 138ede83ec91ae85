"""Bounded client logging and named failpoints."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from memberstream.core.failpoints import _parse
from memberstream.streams import worker_runtime
from memberstream.streams.worker_runtime import RepeatLimiter


def record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_repeats_from_kafka_clients_pass_once_per_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(worker_runtime.time, "monotonic", lambda: now[0])
    limiter = RepeatLimiter(interval_s=10)
    template = "Unable connect to node with id %s: %s"
    passed = [limiter.filter(record("aiokafka.conn", template, 1, "refused")) for _ in range(500)]
    assert passed.count(True) == 1
    now[0] += 10.5
    late = record("aiokafka.conn", template, 1, "refused")
    assert limiter.filter(late)
    assert "[499 more like this in the last 10s]" in late.getMessage()
    # another message, or our own loggers, are not held back
    assert limiter.filter(record("aiokafka.conn", "Connected to %s", 1))
    assert all(limiter.filter(record("memberstream.core.ingest", template, 1, 2)) for _ in range(5))


def test_failpoint_specs_are_checked() -> None:
    assert _parse("") == {}
    assert _parse("drained:3, state_written") == {"drained": 3, "state_written": 1}
    with pytest.raises(ValueError, match="unknown point 'flush'"):
        _parse("flush:2")


def test_an_armed_failpoint_kills_the_process_on_its_pass() -> None:
    code = (
        "from memberstream.core import failpoints as f\n"
        "f.reached('drained'); print('first', flush=True)\n"
        "f.reached('drained'); print('second', flush=True)\n"
    )
    env = {"MEMBERSTREAM_FAILPOINTS": "drained:2", "PATH": ""}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == -9 and done.stdout == "first\n"


def test_tables_open_rocksdb_with_bounded_memory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Faust's defaults give every database a 2 GiB block cache and 3 x 64 MiB memtables."""
    from memberstream.config import Settings
    from memberstream.streams.app import build_app

    settings = Settings(store="rocksdb://", data_dir=tmp_path, rocksdb={"block_cache_mb": 8})
    app = build_app(settings, stage=None)
    for table in app.memberstream_tables.values():  # type: ignore[attr-defined]
        assert table.options == {
            "block_cache_size": 8 * 1024 * 1024,
            "write_buffer_size": 4 * 1024 * 1024,
            "max_write_buffer_number": 2,
        }


def test_tune_gc_freezes_start_up_objects_and_raises_the_thresholds() -> None:
    import gc

    from memberstream.streams.worker_runtime import GC_THRESHOLDS, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 1000  # the modules and objects loaded so far
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
