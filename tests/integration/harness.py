"""This project's own expectations for integration tests: the outputs a worker must
produce, computed in-process with the same processor code, and how to compare them.
Producing, running a worker and reading its outputs come from the testing kit
(:mod:`memberstream.testing`)."""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from memberstream.config import Settings
from memberstream.core.offline import OfflineRun
from memberstream.core.roles import INTEREST_TIERS, TIERS
from memberstream.ml.inference import InferenceStage, stage_from_settings
from memberstream.schemas.events import Envelope
from memberstream.testing import Outputs

_stages: dict[str, InferenceStage | None] = {}


def reference_stage(settings: Settings) -> InferenceStage | None:
    """The inference stage the worker would load for ``settings`` (loaded once per model)."""
    key = orjson.dumps(settings.inference.model_dump(mode="json")).decode()
    if key not in _stages:
        _stages[key] = stage_from_settings(settings)
    return _stages[key]


def expected(settings: Settings, events: Iterable[Envelope]) -> Outputs:
    """What a worker must produce for ``events`` (valid ones), computed without Kafka,
    applying each member's events in the order given."""
    run = OfflineRun(settings, reference_stage(settings))
    run.feed(events)
    updates = {u["output_id"]: u for u in run.outputs[TIERS]}
    interest = {u["output_id"]: u for u in run.outputs[INTEREST_TIERS]}
    return Outputs(updates, len(updates), run.profiles(), [], interest)


def in_hysteresis_zone(settings: Settings, share: float) -> bool:
    """True when ``share`` lies between some interest tier's leave and enter thresholds,
    where the tier held depends on the path the share took."""
    return any(band.leave <= share < band.enter for band in settings.interest.tiers)


def assert_same_profiles(settings: Settings, got: dict[str, dict], want: dict[str, dict]) -> None:
    """Profiles equal field for field, except interest tiers that sit in a hysteresis zone.

    Kafka orders a member's events within one topic, not across the click, purchase
    and review topics. Affinity, shares and the taste vector are sums and come out
    the same whatever the interleaving (compared exactly here, rounded as published);
    a tier inside a hysteresis band depends on whether the share crossed the band on
    the way, which the interleaving can change. Anything else that differs fails.
    """
    assert set(got) == set(want)
    for mid, w in want.items():
        g = got[mid]
        differ = {k: (g.get(k), w.get(k)) for k in set(g) | set(w) if k != "interests"}
        differ = {k: pair for k, pair in differ.items() if pair[0] != pair[1]}
        assert not differ, (mid, "got, want:", differ)
        gi = {i["category"]: i for i in g["interests"]}
        wi = {i["category"]: i for i in w["interests"]}
        for cid in set(gi) | set(wi):
            a, b = gi.get(cid), wi.get(cid)
            if a is not None and b is not None:
                assert a["share"] == b["share"], (mid, cid, a, b)
            if a != b:
                share = (a or b)["share"]  # type: ignore[index]
                assert in_hysteresis_zone(settings, share), (mid, cid, a, b)
