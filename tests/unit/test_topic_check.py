"""The worker's start-up topic check, against a fake admin client (no Kafka)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from memberstream.config import Settings, TopicNames
from memberstream.errors import TopicsNotReady
from memberstream.streams import topic_check
from memberstream.streams.topic_check import check_topics, ensure_topics


class FakeAdmin:
    """Answers describe_topics / describe_configs from ``CLUSTER``: name → (partitions,
    configs). Records the topics named in metadata requests (naming one could create it)."""

    CLUSTER: ClassVar[dict[str, tuple[int, dict[str, str]]]] = {}
    named: ClassVar[list[Any]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return list(self.CLUSTER)

    async def describe_topics(self, topics: list[str] | None = None) -> list[dict]:
        FakeAdmin.named.append(topics)
        return [
            {"error_code": 0, "topic": n, "is_internal": False, "partitions": [{}] * p}
            for n, (p, _) in self.CLUSTER.items()
        ]

    async def describe_configs(self, resources: list[Any]) -> list[Any]:
        class Response:
            def to_object(self_inner) -> dict:
                return {
                    "resources": [
                        {
                            "error_code": 0,
                            "resource_name": r.name,
                            "config_entries": [
                                {"config_names": k, "config_value": v}
                                for k, v in self.CLUSTER[r.name][1].items()
                            ],
                        }
                        for r in resources
                    ]
                }

        return [Response()]


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(topic_check, "AIOKafkaAdminClient", FakeAdmin)
    monkeypatch.setattr(topic_check, "METADATA_GRACE_S", 0.0)
    FakeAdmin.named = []
    s = Settings(partitions=4)
    FakeAdmin.CLUSTER = {name: (4, _configs(s, name)) for name in s.topics.all()}
    return s


def _configs(s: Settings, name: str) -> dict[str, str]:
    policy = "compact" if name in s.topics.compacted() else "delete"
    retention = "-1" if name == s.topics.feedback else "604800000"
    return {"cleanup.policy": policy, "retention.ms": retention}


def test_all_fine(settings: Settings) -> None:
    report = asyncio.run(ensure_topics(settings))
    assert report.ok and report.problems == []
    assert len(report.lines()) == 12  # every topic of TopicNames, model.updates included
    assert all(line.startswith("ok ") for line in report.lines())
    profiles = next(t for t in report.topics if t.name == "member.profiles")
    assert (profiles.partitions, profiles.cleanup_policy) == (4, "compact")
    assert FakeAdmin.named == [None]  # whole-cluster metadata: no topic named, none created


def test_missing_topic(settings: Settings) -> None:
    del FakeAdmin.CLUSTER[settings.topics.product_reviews]
    report = asyncio.run(check_topics(settings))
    assert report.problems == ["memberstream.product-reviews: missing"]
    assert "missing  memberstream.product-reviews (internal)" in report.lines()
    with pytest.raises(TopicsNotReady) as info:
        asyncio.run(ensure_topics(settings))
    error = info.value
    assert error.exit_code == 79
    assert str(error) == (
        "1 of 12 topics are missing or not as configured:\n  memberstream.product-reviews: missing"
    )
    assert error.hint == "`memberstream topics create` creates the missing topics"
    assert error.problems == ["memberstream.product-reviews: missing"]


def test_wrong_partition_count(settings: Settings) -> None:
    FakeAdmin.CLUSTER[settings.topics.clicks] = (2, _configs(settings, settings.topics.clicks))
    report = asyncio.run(check_topics(settings))
    assert report.problems == ["events.clicks: 2 partitions, the settings say 4"]
    assert "kafka-topics.sh --bootstrap-server 127.0.0.1:9092 --delete --topic events.clicks" in (
        report.hint()
    )
    assert "memberstream topics create" in report.hint()


def test_every_topic_with_another_count_suggests_that_count(settings: Settings) -> None:
    FakeAdmin.CLUSTER = {n: (8, c) for n, (_, c) in FakeAdmin.CLUSTER.items()}
    report = asyncio.run(check_topics(settings))
    assert len(report.problems) == 12
    assert "set partitions = 8 (MEMBERSTREAM_PARTITIONS=8)" in report.hint()


def test_cleanup_policies_and_feedback_retention(settings: Settings) -> None:
    t = settings.topics
    FakeAdmin.CLUSTER[t.member_profiles] = (4, {"cleanup.policy": "delete"})
    FakeAdmin.CLUSTER[t.product_review_summaries] = (4, {"cleanup.policy": "compact,delete"})
    FakeAdmin.CLUSTER[t.purchases] = (4, {"cleanup.policy": "compact"})
    FakeAdmin.CLUSTER[t.feedback] = (4, {"cleanup.policy": "delete", "retention.ms": "1000"})
    report = asyncio.run(check_topics(settings))
    assert report.problems == [
        "events.purchases: cleanup.policy=compact, must be delete "
        "(compaction would drop records that share a key)",
        "labels.feedback: retention.ms=1000, must be -1 "
        "(analyst labels are kept forever for the learning loop)",
        "member.profiles: cleanup.policy=delete, must be compact "
        "(it keeps the latest record per key)",
    ]
    hint = report.hint()
    assert "--entity-name member.profiles --add-config cleanup.policy=compact" in hint
    assert "--entity-name events.purchases --add-config cleanup.policy=delete" in hint
    assert "--entity-name labels.feedback --add-config retention.ms=-1" in hint
    lines = "\n".join(report.lines())
    assert "wrong    member.profiles (output, compacted; 4 partitions, cleanup.policy=delete)" in (
        lines
    )


def test_namespaced_topic_names(settings: Settings) -> None:
    names = {k: f"ns.{v}" for k, v in TopicNames().model_dump().items()}
    namespaced = settings.model_copy(update={"topics": TopicNames(**names)})
    report = asyncio.run(check_topics(namespaced))
    assert len(report.problems) == 12
    assert all(p.endswith(": missing") for p in report.problems)
    assert all(p.startswith("ns.") for p in report.problems)
