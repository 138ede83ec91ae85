"""The ``memberstream`` command line, run in-process against a real Kafka."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from click.testing import CliRunner, Result

from memberstream.cli.main import cli
from memberstream.config import CONFIG_ENV, Settings, TopicNames
from memberstream.streams.kafka_io import iter_topic, produce_raw
from memberstream.streams.worker_process import settings_env

pytestmark = pytest.mark.integration

CLICK = {
    "type": "click",
    "event_id": "cli-click-1",
    "member_id": "m-cli-1",
    "occurred_at": "2024-05-01T12:00:00Z",
    "action": "view",
    "product_id": "p-1",
}
PURCHASE = {
    "type": "purchase",
    "event_id": "cli-purchase-1",
    "member_id": "m-cli-1",
    "occurred_at": "2024-05-01T12:05:00Z",
    "order_id": "o-1",
    "items": [
        {
            "product_id": "p-1",
            "title": "Kettle",
            "category": "kitchen",
            "quantity": 2,
            "unit_price": 12.5,
        },
    ],
    "total": 25.0,
}
REVIEW = {
    "type": "review",
    "event_id": "cli-review-1",
    "member_id": "m-cli-2",
    "occurred_at": "2024-05-02T09:00:00Z",
    "product_id": "p-1",
    "rating": 4,
    "text": "fine kettle",
}


def clean_env(**extra: str | None) -> dict[str, str | None]:
    """Unset every MEMBERSTREAM_* variable of the outer environment, then add ``extra``."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("MEMBERSTREAM_")}
    env[CONFIG_ENV] = None
    env["KAFKA_BOOTSTRAP_SERVERS"] = None
    env.update(extra)
    return env


def invoke(settings: Settings | None, args: list[str], **extra: str | None) -> Result:
    env = clean_env(**(settings_env(settings) if settings is not None else {}), **extra)
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


async def _records(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    return [(k, v) async for k, v, _, _ in iter_topic(settings, topic, idle_timeout_s=2.0)]


def records(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    return asyncio.run(_records(settings, topic))


def json_lines(output: str) -> list[dict]:
    return [orjson.loads(line) for line in output.splitlines() if line.strip()]


# --- produce and consume ----------------------------------------------------------------


def test_produce_file_then_consume(namespace: Settings, tmp_path: Path) -> None:
    events = write_jsonl(tmp_path / "events.jsonl", [CLICK, PURCHASE, REVIEW])
    result = invoke(namespace, ["produce", "--file", str(events)])
    assert result.exit_code == 0, result.output
    assert re.search(r"^sent 3 events in [\d.]+s", result.stdout, re.M), result.output

    consumed = invoke(
        namespace, ["consume", namespace.topics.purchases, "--from-beginning", "--timeout", "3"]
    )
    assert consumed.exit_code == 0, consumed.output
    lines = json_lines(consumed.stdout)
    assert len(lines) == 1, consumed.stdout
    (purchase,) = lines
    assert purchase["event_id"] == PURCHASE["event_id"]
    assert purchase["type"] == "purchase"
    assert purchase["member_id"] == PURCHASE["member_id"]
    assert purchase["total"] == 25.0
    assert purchase["items"][0]["product_id"] == "p-1"

    # each event went to its own topic, keyed by member_id
    assert [
        (k, orjson.loads(v)["event_id"]) for k, v in records(namespace, namespace.topics.clicks)
    ] == [(b"m-cli-1", "cli-click-1")]
    assert [
        (k, orjson.loads(v)["event_id"]) for k, v in records(namespace, namespace.topics.reviews)
    ] == [(b"m-cli-2", "cli-review-1")]


def test_consume_limit(namespace: Settings, tmp_path: Path) -> None:
    clicks = [{**CLICK, "event_id": f"lim-{i}"} for i in range(5)]  # one member: one partition
    assert (
        invoke(
            namespace, ["produce", "--file", str(write_jsonl(tmp_path / "c.jsonl", clicks))]
        ).exit_code
        == 0
    )
    result = invoke(
        namespace,
        ["consume", namespace.topics.clicks, "--from-beginning", "--limit", "2", "--timeout", "3"],
    )
    assert result.exit_code == 0, result.output
    assert [r["event_id"] for r in json_lines(result.stdout)] == ["lim-0", "lim-1"]


def test_produce_bad_line_names_file_and_line(namespace: Settings, tmp_path: Path) -> None:
    bad = {k: v for k, v in PURCHASE.items() if k != "member_id"}
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        orjson.dumps(CLICK) + b"\n" + orjson.dumps(bad) + b"\n" + orjson.dumps(REVIEW) + b"\n"
    )
    result = invoke(namespace, ["produce", "--file", str(path)])
    assert result.exit_code != 0
    assert f"{path}:2:" in result.output
    assert "member_id" in result.output
    # the line after the bad one is never sent
    assert records(namespace, namespace.topics.reviews) == []


def test_produce_invalid_json_line(namespace: Settings, tmp_path: Path) -> None:
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(b"\n{not json\n")
    result = invoke(namespace, ["produce", "--file", str(path)])
    assert result.exit_code == 1
    assert f"{path}:2:" in result.output


def test_produce_synthetic_dataset(namespace: Settings) -> None:
    result = invoke(namespace, ["produce", "--dataset", "synthetic", "--limit", "50"])
    assert result.exit_code == 0, result.output
    assert "sent 50 events" in result.stdout
    total = sum(
        len(records(namespace, t)) for t in [*namespace.topics.inputs(), namespace.topics.feedback]
    )
    assert total == 50


def test_produce_needs_exactly_one_source(namespace: Settings, tmp_path: Path) -> None:
    events = write_jsonl(tmp_path / "events.jsonl", [CLICK])
    neither = invoke(namespace, ["produce"])
    assert neither.exit_code == 2
    assert "exactly one of --file or --dataset" in neither.output
    both = invoke(namespace, ["produce", "--file", str(events), "--dataset", "synthetic"])
    assert both.exit_code == 2
    assert "exactly one of --file or --dataset" in both.output
    assert records(namespace, namespace.topics.clicks) == []  # nothing was sent


def test_produce_unknown_dataset_is_a_usage_error(namespace: Settings) -> None:
    result = invoke(namespace, ["produce", "--dataset", "nope"])
    assert result.exit_code == 2
    assert "nope" in result.output


def test_consume_non_json_value(namespace: Settings) -> None:
    topic = namespace.topics.feedback
    raw = b"\xff\xfe not json"
    asyncio.run(
        produce_raw(
            namespace,
            topic,
            [(b"m-raw", raw), (b"m-raw", b'{"ok": true}'), (None, b"plain text")],
        )
    )
    result = invoke(namespace, ["consume", topic, "--from-beginning", "--timeout", "3"])
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stdout)
    assert len(lines) == 3, result.stdout
    assert {"key": "m-raw", "value_b64": base64.b64encode(raw).decode()} in lines
    assert {"ok": True} in lines  # JSON values are printed as they are
    assert {"key": None, "value_b64": base64.b64encode(b"plain text").decode()} in lines


def test_consume_empty_topic_prints_nothing(namespace: Settings) -> None:
    result = invoke(
        namespace, ["consume", namespace.topics.dlq, "--from-beginning", "--timeout", "1"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


# --- topics create ----------------------------------------------------------------------


async def _describe(
    settings: Settings, names: list[str], config: str = "cleanup.policy"
) -> tuple[dict[str, str], dict[str, int]]:
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, n, {config: None}) for n in names]
        policies: dict[str, str] = {}
        for response in await admin.describe_configs(resources):
            for resource in response.to_object()["resources"]:
                assert resource["error_code"] == 0, resource
                (entry,) = resource["config_entries"]
                assert entry["config_names"] == config
                policies[resource["resource_name"]] = entry["config_value"]
        partitions = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)}
    finally:
        await admin.close()
    return policies, partitions


def test_topics_create_is_idempotent_and_compacts_profiles(namespace: Settings) -> None:
    # fresh names under the namespace's prefix (so the session cleanup deletes them)
    prefix = namespace.topics.clicks.removesuffix(TopicNames().clicks)
    names = {k: f"{prefix}fresh.{v}" for k, v in TopicNames().model_dump().items()}
    settings = namespace.model_copy(update={"topics": TopicNames(**names)})
    everything = set(settings.topics.all())
    assert len(everything) == 12

    def run() -> dict[str, str]:
        result = invoke(settings, ["topics", "create"])
        assert result.exit_code == 0, result.output
        status = {}
        for line in result.stdout.splitlines():
            word, name, rest = line.split(maxsplit=2)
            assert rest == "(3 partitions)", line
            status[name] = word
        return status

    assert run() == dict.fromkeys(everything, "created")
    assert run() == dict.fromkeys(everything, "exists")

    policies, partitions = asyncio.run(_describe(settings, sorted(everything)))
    assert policies[settings.topics.member_profiles] == "compact"
    for name in settings.topics.inputs():
        assert policies[name] == "delete"
    assert {n for n, p in policies.items() if "compact" in p} == settings.topics.compacted()
    assert partitions == dict.fromkeys(everything, 3)
    retention, _ = asyncio.run(_describe(settings, [settings.topics.feedback], "retention.ms"))
    assert retention == {settings.topics.feedback: "-1"}  # labels are kept for the learning loop


def test_topics_create_on_existing_namespace_says_exists(namespace: Settings) -> None:
    result = invoke(namespace, ["topics", "create"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 12
    assert all(line.startswith("exists ") for line in lines), lines


# --- schemas export ---------------------------------------------------------------------


def test_schemas_export(tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    result = invoke(None, ["schemas", "export", str(out)])
    assert result.exit_code == 0, result.output
    written = [Path(p) for p in result.stdout.splitlines()]
    assert {p.name for p in written} >= {"PurchaseEvent.schema.json", "DeadLetter.schema.json"}
    assert sorted(written) == sorted(out.iterdir())
    purchase = orjson.loads((out / "PurchaseEvent.schema.json").read_bytes())
    assert purchase["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"event_id", "member_id", "order_id", "items"} <= set(purchase["required"])


# --- help -------------------------------------------------------------------------------

HELP = [
    ([], "real-time member intelligence on Kafka"),
    (["worker"], "Run a stream worker"),
    (["worker"], "the worker checks that Kafka answers"),
    (["produce"], "Send events to their input topics"),
    (["consume"], "Print records of TOPIC"),
    (["topics"], "Manage memberstream's Kafka topics"),
    (["topics", "create"], "Create every topic (idempotent)"),
    (["topics", "check"], "Check every topic the worker reads and writes"),
    (["schemas"], "Event and output schemas"),
    (["schemas", "export"], "Write JSON Schema files"),
    (["demo"], "Run the pipeline end to end and print a report"),
    (["broker"], "Run a local Apache Kafka broker for development"),
    (["broker", "start"], "Start the broker in the background"),
    (["broker", "stop"], "Stop the broker (clean shutdown"),
    (["broker", "status"], "Exit status 0 when running, 3 when stopped"),
]


@pytest.mark.parametrize(("command", "phrase"), HELP, ids=[" ".join(c) or "cli" for c, _ in HELP])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(command: list[str], phrase: str, flag: str) -> None:
    result = invoke(None, [*command, flag])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    text = " ".join(result.stdout.split())  # help text is re-wrapped
    assert phrase in text, result.stdout


def test_group_help_lists_subcommands() -> None:
    text = invoke(None, ["--help"]).stdout
    for name in ("worker", "produce", "consume", "topics", "schemas", "demo", "broker"):
        assert re.search(rf"^\s+{name}\s", text, re.M), name


# --- demo -------------------------------------------------------------------------------


async def _topics_with(bootstrap: str, fragment: str) -> list[str]:
    admin = AIOKafkaAdminClient(**Settings(kafka_bootstrap_servers=bootstrap).kafka_client_kwargs())
    await admin.start()
    try:
        return [t for t in await admin.list_topics() if fragment in t]
    finally:
        await admin.close()


def test_demo(kafka_bootstrap: str, tmp_path: Path) -> None:
    result = invoke(
        None,
        # the learning cycle has tests of its own (test_model_swap.py, bench.learning)
        ["demo", "--limit", "1500", "--synthetic", "2000", "--timeout", "240", "--no-learn"],
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        MEMBERSTREAM_DATA_DIR=str(tmp_path / "data"),
    )
    out = result.output
    assert result.exit_code == 0, out
    assert f"Kafka: {kafka_bootstrap} (KAFKA_BOOTSTRAP_SERVERS)" in out
    assert "Sent 1,500 purchases and 3 malformed records." in out
    assert "events in:        3,747" in out  # 1,500 + 3 malformed + 2,000 + 244 reference reviews
    assert "dead letters:     3" in out
    assert re.search(r"^members:\s+[1-9][\d,]*$", out, re.M), out
    assert re.search(r"^  bronze\s+[\d,]+\s+[\d.]+%", out, re.M), out
    interest = r"^interest changes: [1-9][\d,]*  \(model: use-multilingual-v3@"
    assert re.search(interest, out, re.M), out
    assert re.search(r"^members with a core interest: [1-9]", out, re.M), out
    assert re.search(
        r"^  \d{4}-\d\d-\d\d m\d+: .+ \(after a (click|purchase|review)\)$", out, re.M
    ), out
    assert re.search(r"^throughput:\s+[\d,]+ events/s \(3,747 events in [\d.]+s", out, re.M), out
    assert re.search(r"^anomaly flags:\s+[\d,]+ ", out, re.M), out
    assert re.search(r"^review summaries: (2[4-9]|[3-9]\d|\d{3,}) products$", out, re.M), out
    assert re.search(r"^    \+ \[\w+\] .+ \(demo-ref-en-\d\d-r\d\d", out, re.M), out
    # English and Chinese summaries from the multilingual model, with their sentiment split.
    assert re.search(r"^  model: extractive/v2\+use-multilingual-v3@", out, re.M), out
    assert re.search(r"^  ref-zh-\d\d \(\d+ reviews, .*sentiment \{'negative'", out, re.M), out
    assert re.search(r"^  ref-en-\d\d \(\d+ reviews, .*sentiment \{'negative'", out, re.M), out
    assert re.search(r"^    [\u4e00-\u9fff].*[。！]", out, re.M), out
    zh_point = r"^    [\-+] \[\w+\] [\u4e00-\u9fff].+ \(demo-ref-zh-\d\d-r\d\d"
    assert re.search(zh_point, out, re.M), out

    match = re.search(r"Topics created with suffix \.(\d+)", out)
    assert match, out
    run_id = match.group(1)
    deadline = time.monotonic() + 30
    while left := asyncio.run(_topics_with(kafka_bootstrap, run_id)):
        assert time.monotonic() < deadline, f"demo topics left behind: {left}"
        time.sleep(1)
