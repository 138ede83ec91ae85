"""`memberstream dlq list|show|redrive` against a real broker and worker: grouped
listing, one letter in full, and a redrive that is idempotent and never loops."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from memberstream.config import Settings
from memberstream.streams.kafka_io import produce_raw, read_json
from memberstream.testing import run_until_processed

from .test_cli import invoke, json_lines

pytestmark = pytest.mark.integration

BAD = [
    (b"m1", b'{"event_id": "x1", "member_id": "m1", '),  # cut short
    (b"m2", b'{"event_id": "x2", "member_id": "m2", '),
    (b"m3", b"\xff\xfe not utf-8"),
]


def letters(settings: Settings) -> list[dict]:
    return asyncio.run(read_json(settings, settings.topics.dlq, idle_timeout_s=3))


def redrive(settings: Settings, *args: str) -> str:
    result = invoke(settings, ["dlq", "redrive", *args])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_list_show_and_a_redrive_that_neither_repeats_nor_loops(
    namespace: Settings, tmp_path: Path
) -> None:
    asyncio.run(produce_raw(namespace, namespace.topics.clicks, BAD))
    run_until_processed(namespace, tmp_path / "worker-1.log")
    first = letters(namespace)
    assert len(first) == 3 and all(d["redrive_of"] is None for d in first)

    groups = json_lines(invoke(namespace, ["dlq", "list", "--json"]).stdout)
    assert sorted(g["count"] for g in groups) == [1, 2]  # two cut-short JSONs group together
    assert {g["source_topic"] for g in groups} == {namespace.topics.clicks}
    assert sum(len(g["examples"]) for g in groups) == 3

    cut = next(d for d in first if d["key_b64"] == "bTE=")  # m1
    shown = orjson.loads(invoke(namespace, ["dlq", "show", cut["output_id"][:13]]).stdout)
    assert shown["value"] == BAD[0][1].decode() and shown["key"] == "m1"
    assert shown["reason"] == cut["reason"]

    assert redrive(namespace, "--dry-run").startswith("would send 3;")
    assert redrive(namespace, "--dry-run").startswith("would send 3;")  # still: nothing sent
    assert redrive(namespace).startswith("sent 3;")
    assert redrive(namespace).startswith("sent 0; already sent before 3;")  # idempotent

    run_until_processed(namespace, tmp_path / "worker-2.log")  # the same bytes fail again
    every = letters(namespace)
    second = [d for d in every if d["redrive_of"] is not None]
    assert len(every) == 6 and len(second) == 3
    assert sorted(d["redrive_of"] for d in second) == sorted(d["output_id"] for d in first)
    out = redrive(namespace)
    assert out.startswith("sent 0; already sent before 3; failed again after a redrive")
    assert " (use --again) 3;" in out  # not sent again: no loop
    assert redrive(namespace, "--again").startswith("sent 3;")
    assert redrive(namespace, "--again").startswith("sent 0; already sent before 6;")
