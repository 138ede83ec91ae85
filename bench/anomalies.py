"""Anomaly detectors: precision and recall per kind with intervals, false alerts, curves,
on two independent scenario families, and what the detectors cost the worker.

``python -m bench.anomalies [--family a|b|both] [--offline] [--small] [--floors FILE]``

Two seeded streams, each normal traffic plus labeled incidents:

- family **a**: :class:`~memberstream.datasets.anomalies.AnomalyInjector` over the
  synthetic workload (bot sessions, card testing, account takeovers, copy-paste
  reviews, review bombing, its quieter incidents and hard negatives;
  ``--incidents-per-day`` per scenario, four times that for the one-review scenarios
  ``rating_mismatch`` and ``hn_honest_mixed_reviews``); its orders carry payment, shipping
  and device references (``WorkloadConfig.instrument_refs``) unless ``--no-refs``;
- family **b**: :func:`memberstream.datasets.independent_scenarios.independent_family`,
  written apart from the detectors, with subtler variants and hard negatives (benign
  cases that look suspicious; any flag on them is a false positive).

Per family: flags with the default settings, scored by
:mod:`memberstream.domain.anomaly.evaluation` (per kind precision and recall with 95%
Wilson intervals, recall per scenario, hard negatives flagged, false alerts per
10,000 benign events, recall per variant where the labels name one, e.g.
rating_text_mismatch by tone and language, and its precision by language); then one
more run with every threshold lowered (:mod:`bench.anomaly_curves`) for a
precision-recall curve per kind.

Where the flags come from. ``--offline``: the worker's processors in one process
(:class:`~memberstream.core.offline.OfflineRun`), for every family. Without it, family
a goes through Kafka: ``memberstream worker`` with the defaults (flags read from
member.anomalies) and, alternating for ``--rounds``, with ``anomaly.enabled=false``,
for the detectors' cost (events/s is the slope of committed input offsets between
10% and 90%, as in ``bench.throughput``). The Kafka path runs family a only: family b
and the curve runs are always computed offline.

``--small`` is a slice for CI (a few thousand events per family, well under a
minute); with ``--floors bench/anomaly_floors.toml`` the command exits 1 when a
measured value breaks a floor. Results: ``DIR/anomalies.json`` and
``DIR/anomalies.md`` (``--out``; not written for ``--small`` unless ``--out`` is given).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.anomaly_curves import (
    CURVE_SCALE,
    PROBABILITY_KINDS,
    curves,
    lowered,
    lowest_cutoff,
)
from bench.throughput import (
    events_through,
    fresh_namespace,
    run_id,
    run_info,
    save_results,
    slope_rate,
)
from memberstream.config import Settings
from memberstream.core.offline import OfflineRun
from memberstream.core.roles import ANOMALIES
from memberstream.datasets.anomalies import (
    ALL_SCENARIOS,
    AnomalyInjector,
    AnomalyLabel,
    InjectionConfig,
)
from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.domain.anomaly.calibration import calibrate
from memberstream.domain.anomaly.evaluation import (
    Evaluation,
    by_variant,
    evaluate,
    precision_by_detail,
)
from memberstream.domain.anomaly.flags import KINDS
from memberstream.ml.inference import stage_from_settings
from memberstream.schemas.events import Envelope
from memberstream.streams.kafka_io import read_json, wait_for_kafka
from memberstream.streams.worker_process import WorkerProcess

GOAL_PRECISION = 0.9
GOAL_RECALL = 0.8
GOAL_COST = 0.30
FAMILIES = ("a", "b")
TITLES = {"a": "injector", "b": "independent scenarios"}
FEED_CHUNK = 20_000

FAMILY_A = {"members": 2000, "days": 60.0, "warmup_days": 8.0}
ONE_REVIEW_SCENARIOS = ("rating_mismatch", "hn_honest_mixed_reviews")
ONE_REVIEW_RATE = 4.0
"""Family a: these scenarios are one review per case, so they run at this multiple of
``--incidents-per-day`` (about 200 cases each over the 52 days after warm-up: enough
for recall per tone and language)."""
BREAKDOWN_KINDS = {"rating_text_mismatch": "language"}
"""Kinds whose precision the report splits by a detail of their flags."""
SMALL = {
    "a": {"members": 300, "days": 20.0, "warmup_days": 5.0},
    "b": {"members": 300, "days": 15.0, "warmup_days": 5.0, "per_scenario": 8},
}
"""The ``--small`` slice per family (explicit arguments override it)."""


@dataclass
class Family:
    name: str
    events: list[Envelope]
    labels: list[AnomalyLabel]
    stream: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


def _given(args: argparse.Namespace, family: str, key: str, default: Any = None) -> Any:
    """An argument if given, else the ``--small`` preset (when set), else ``default``."""
    value = getattr(args, key, None)
    if value is not None:
        return value
    if args.small and key in SMALL[family]:
        return SMALL[family][key]
    return default


def _describe(events: list[Envelope], labels: Sequence[AnomalyLabel]) -> dict[str, Any]:
    incidents = [lab for lab in labels if lab.kinds]
    return {
        "events": len(events),
        "incidents": len(incidents),
        "hard_negatives": len(labels) - len(incidents),
        "injected_events": sum(len(lab.event_ids) for lab in incidents),
        "hard_negative_events": sum(len(lab.event_ids) for lab in labels if not lab.kinds),
    }


def build_family_a(args: argparse.Namespace) -> Family:
    seed = args.seed
    members = _given(args, "a", "members", FAMILY_A["members"])
    days = _given(args, "a", "days", FAMILY_A["days"])
    warmup = _given(args, "a", "warmup_days", FAMILY_A["warmup_days"])
    injector = AnomalyInjector(
        InjectionConfig(
            seed=seed,
            incidents_per_day=args.incidents_per_day,
            scenario_rates={
                s: ONE_REVIEW_RATE * args.incidents_per_day for s in ONE_REVIEW_SCENARIOS
            },
            warmup_days=warmup,
            scenarios=ALL_SCENARIOS,
        )
    )
    config = WorkloadConfig(seed=seed, members=members, days=days, instrument_refs=not args.no_refs)
    events = list(SyntheticWorkload(config, injectors=[injector]).events())
    labels = list(injector.labels)
    stream = {"seed": seed, "members": members, "days": days, "warmup_days": warmup}
    stream["incidents_per_day"] = args.incidents_per_day
    stream["instrument_refs"] = config.instrument_refs
    return Family("a", events, labels, stream | _describe(events, labels))


def build_family_b(args: argparse.Namespace) -> Family:
    # imported here: family a runs without it
    from memberstream.datasets.independent_scenarios import FamilyConfig, independent_family

    overrides = {
        key: value
        for key in ("members", "days", "warmup_days", "per_scenario")
        if (value := _given(args, "b", key)) is not None
    }
    if args.seed_b is not None:
        overrides["seed"] = args.seed_b
    config = FamilyConfig(**overrides)
    events, labels = independent_family(config)
    stream = {
        key: getattr(config, key)
        for key in ("seed", "members", "days", "warmup_days", "per_scenario")
        if hasattr(config, key)
    }
    return Family("b", list(events), list(labels), stream | _describe(list(events), labels))


def offline_flags(events: Sequence[Envelope], settings: Settings, stage: Any) -> list[dict]:
    """Every flag record the worker's processors emit over ``events``, in order."""
    run = OfflineRun(settings, stage)
    started = time.monotonic()
    for i in range(0, len(events), FEED_CHUNK):
        run.feed(events[i : i + FEED_CHUNK])
        done = min(i + FEED_CHUNK, len(events))
        if len(events) > FEED_CHUNK:
            print(f"  offline: {done:,}/{len(events):,} events, {time.monotonic() - started:.0f}s")
    if run.dead_letters:
        _, failure = run.dead_letters[0]
        raise RuntimeError(
            f"{len(run.dead_letters)} records dead-lettered in the offline run "
            f"(first: {failure.error_type}: {failure.reason}); the flags would be incomplete"
        )
    return run.outputs[ANOMALIES]


async def through_kafka(
    events: list[Envelope], detectors: bool, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    async with fresh_namespace(args.bootstrap, args.partitions, tmp) as settings:
        settings.anomaly.enabled = detectors
        name = "on" if detectors else "off"
        log_path = tmp / "logs" / f"detectors-{name}-{run_id(settings)}.log"
        samples = await events_through(
            settings,
            events,
            WorkerProcess(settings, log_path).start,
            args.timeout,
            until_consumed=True,
        )
        topic = settings.topics.member_anomalies
        flags = await read_json(settings, topic)
        return {"rate": slope_rate(samples, len(events)), "wall_s": samples[-1][0], "flags": flags}


def unique_flags(flags: list[dict]) -> tuple[list[dict], int]:
    """Flags by id (a repeat must carry the same payload), and how many records repeated."""
    by_id: dict[str, dict] = {}
    for flag in flags:
        seen = by_id.setdefault(flag["flag_id"], flag)
        if seen != flag:
            raise AssertionError(f"two different payloads share flag id {flag['flag_id']}")
    return list(by_id.values()), len(flags) - len(by_id)


async def run_kafka(
    events: list[Envelope], args: argparse.Namespace, tmp: Path
) -> tuple[list[dict], dict[str, Any]]:
    await wait_for_kafka(Settings(kafka_bootstrap_servers=args.bootstrap))
    rounds = []
    flags: list[dict] = []
    for r in range(1, args.rounds + 1):
        on = await through_kafka(events, True, args, tmp)
        print(f"round {r} detectors on:  {on['rate']:7.0f} events/s, {len(on['flags'])} flags")
        off = await through_kafka(events, False, args, tmp)
        print(f"round {r} detectors off: {off['rate']:7.0f} events/s")
        if r == 1:
            flags = on["flags"]
        rounds.append({"round": r, "on": on["rate"], "off": off["rate"], "flags": len(on["flags"])})
    on_rate = statistics.median(x["on"] for x in rounds)
    off_rate = statistics.median(x["off"] for x in rounds)
    return flags, {
        "rounds": rounds,
        "on": on_rate,
        "off": off_rate,
        "cost": 1 - on_rate / off_rate,
        "ratios": [x["on"] / x["off"] for x in rounds],
    }


def summarize_evaluation(e: Evaluation, budget: float) -> dict[str, Any]:
    return e.as_dict() | {
        "goals": e.meets(GOAL_PRECISION, GOAL_RECALL),
        "budget_per_10k": budget,
    }


def evaluate_family(
    fam: Family, args: argparse.Namespace, settings: Settings, stage: Any
) -> dict[str, Any]:
    """Flags with the defaults (Kafka for family a unless ``--offline``), their evaluation,
    and the curves from the lowered run."""
    result: dict[str, Any] = {"title": TITLES[fam.name], "stream": fam.stream}
    started = time.monotonic()
    if fam.name == "a" and not args.offline:
        result["mode"] = "kafka"
        with tempfile.TemporaryDirectory(prefix="bench-anomalies-") as tmp:
            raw, result["throughput"] = asyncio.run(run_kafka(fam.events, args, Path(tmp)))
    else:
        result["mode"] = "offline"
        raw = offline_flags(fam.events, settings, stage)
    fam.timings["default_run_s"] = time.monotonic() - started
    flags, repeated = unique_flags(raw)
    result["repeated_flag_records"] = repeated
    evaluation = evaluate(flags, fam.labels, len(fam.events))
    result["evaluation"] = summarize_evaluation(
        evaluation, settings.anomaly.flag_budget_per_10k_events
    )
    result["breakdown"] = breakdown(flags, fam.labels)
    result["sample_flags"] = sorted(flags, key=lambda f: (f["kind"], f["flag_id"]))[:3]
    if args.curve_scale > 0:
        started = time.monotonic()
        low = lowered(settings.anomaly, args.curve_scale)
        candidates = offline_flags(fam.events, settings.model_copy(update={"anomaly": low}), stage)
        fam.timings["curve_run_s"] = time.monotonic() - started
        result["curves"] = curves(
            candidates, fam.labels, fam.events, settings.anomaly, args.curve_scale, KINDS
        )
        result["curve_candidates"] = len(candidates)
    result["timings_s"] = fam.timings
    return result


def breakdown(flags: Sequence[Mapping[str, Any]], labels: Sequence[AnomalyLabel]) -> dict:
    """Per variant of the scenarios whose labels name one: recall (flagged share of a hard
    negative) by variant and rolled up by its first two parts (tone, language); and the
    precision of :data:`BREAKDOWN_KINDS` by a detail of their flags."""
    return {
        "variants": [v.as_dict() for v in by_variant(flags, labels)],
        "by_part": {
            name: [v.as_dict() for v in by_variant(flags, labels, part)]
            for part, name in enumerate(("tone", "language"))
        },
        "precision_by": {
            kind: {
                "detail": detail,
                "groups": [g.as_dict() for g in precision_by_detail(flags, labels, kind, detail)],
            }
            for kind, detail in BREAKDOWN_KINDS.items()
        },
    }


# -- floors ------------------------------------------------------------------------------

FLOOR_KEYS = frozenset(
    {
        "precision_min",
        "recall_min",
        "scenario_recall_min",
        "false_alerts_per_10k_max",
        "false_alerts_per_10k_max_by_kind",
        "hard_negative_flagged_share_max",
    }
)


def check_floors(families: Mapping[str, Mapping[str, Any]], floors: Mapping[str, Any]) -> list[str]:
    """What breaks a floor, one line each (empty: all met).

    ``floors`` maps a family name to tables of limits (see ``bench/anomaly_floors.toml``):
    ``precision_min`` and ``recall_min`` by kind (a kind without flags meets any
    precision floor), ``scenario_recall_min`` by scenario, ``false_alerts_per_10k_max``
    over all kinds, ``false_alerts_per_10k_max_by_kind`` by kind, and
    ``hard_negative_flagged_share_max`` by hard-negative scenario. Families not run are
    skipped; a floor on a kind or scenario the run did not have is broken.
    """
    broken: list[str] = []
    for name, limits in floors.items():
        if name not in families:
            continue
        unknown = set(limits) - FLOOR_KEYS
        if unknown:
            broken.append(f"{name}: unknown floor keys {sorted(unknown)}")
        ev = families[name]["evaluation"]
        kinds = {k["kind"]: k for k in ev["kinds"]}
        scenarios = {s["scenario"]: s for s in ev["scenarios"]}
        hard = {h["scenario"]: h for h in ev["hard_negatives"]}

        def low(what: str, got: float | None, floor: float, name: str = name) -> None:
            if got is None or got < floor:
                shown = "none" if got is None else f"{got:.3f}"
                broken.append(f"{name}: {what} {shown} < floor {floor}")

        def high(what: str, got: float | None, cap: float, name: str = name) -> None:
            if got is None or got > cap:
                shown = "none" if got is None else f"{got:.3f}"
                broken.append(f"{name}: {what} {shown} > ceiling {cap}")

        for kind, floor in limits.get("precision_min", {}).items():
            k = kinds.get(kind)
            got = None if k is None else (1.0 if k["precision"] is None else k["precision"])
            low(f"{kind} precision", got, floor)
        for kind, floor in limits.get("recall_min", {}).items():
            low(f"{kind} recall", kinds.get(kind, {}).get("recall"), floor)
        for scenario, floor in limits.get("scenario_recall_min", {}).items():
            low(f"scenario {scenario} recall", scenarios.get(scenario, {}).get("recall"), floor)
        if "false_alerts_per_10k_max" in limits:
            cap = limits["false_alerts_per_10k_max"]
            high("false alerts per 10k", ev["false_alerts_per_10k"], cap)
        for kind, cap in limits.get("false_alerts_per_10k_max_by_kind", {}).items():
            got = ev["false_alerts_per_10k_by_kind"].get(kind)
            high(f"{kind} false alerts per 10k", got, cap)
        for scenario, cap in limits.get("hard_negative_flagged_share_max", {}).items():
            got = hard.get(scenario, {}).get("flagged_share")
            high(f"hard negative {scenario} flagged share", got, cap)
    return broken


# -- report ------------------------------------------------------------------------------


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _with_ci(x: float | None, ci: Sequence[float] | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if ci is None else f"{x:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def _stream_line(name: str, fam: Mapping[str, Any]) -> str:
    s = fam["stream"]
    source = "the worker through Kafka" if fam["mode"] == "kafka" else "the offline run"
    keys = ("seed", "members", "days", "warmup_days", "per_scenario", "incidents_per_day")
    size = ", ".join(f"{k.replace('_', ' ')} {s[k]:g}" for k in keys if k in s)
    if "instrument_refs" in s:
        size += ", orders with references" if s["instrument_refs"] else ", no references"
    return (
        f"- **{name}** ({fam['title']}): {s['events']:,} events ({size}); "
        f"{s['incidents']} incidents ({s['injected_events']:,} events), "
        f"{s['hard_negatives']} hard negatives ({s['hard_negative_events']:,} events); "
        f"flags from {source}."
    )


def _kind(family: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return next(k for k in family["evaluation"]["kinds"] if k["kind"] == kind)


def _curve_rows(names: Sequence[str], families: Mapping[str, Any]) -> list[str]:
    """A few cutoffs per kind (the curve run's, the default, some above), each family's
    precision, recall and false alerts there, then the default run's own figures."""
    lines = [
        "| kind | cutoff | "
        + " | ".join(f"{n}: precision | {n}: recall | {n}: FA/10k" for n in names)
        + " |",
        "|---|---:|" + "---:|---:|---:|" * len(names),
    ]
    first = families[names[0]]["curves"]
    for kind in first:
        fams = [families[n] for n in names]
        if not any(f["curves"][kind]["candidates"] or _kind(f, kind)["incidents"] for f in fams):
            continue
        default = first[kind]["default_cutoff"]
        if kind in PROBABILITY_KINDS:
            shown = {0.6, 0.7, 0.8, 0.9, 0.95}
        else:
            shown = {0.75, 1.0, 1.25, 1.5, 2.0}
        points = {p["cutoff"] for p in first[kind]["points"]}
        start = min(points)
        wanted = sorted(c for c in points if c in shown | {default, start})
        for cutoff in wanted:
            label = f"{cutoff:g}" + (" (default)" if cutoff == default else "")
            label += " (curve run)" if cutoff == start else ""
            cells = []
            for n in names:
                p = next(p for p in families[n]["curves"][kind]["points"] if p["cutoff"] == cutoff)
                cells += [_f(p["precision"]), _f(p["recall"]), _f(p["false_alerts_per_10k"], 2)]
            lines.append(f"| {kind} | {label} | " + " | ".join(cells) + " |")
        cells = []
        for n in names:
            k = _kind(families[n], kind)
            fa = families[n]["evaluation"]["false_alerts_per_10k_by_kind"][kind]
            cells += [_f(k["precision"]), _f(k["recall"]), _f(fa, 2)]
        lines.append(f"| {kind} | default run | " + " | ".join(cells) + " |")
    return lines


def _breakdown_rows(names: Sequence[str], families: Mapping[str, Any]) -> list[str]:
    """Recall per variant (and rolled up by tone and language), and precision by detail."""
    rows: list[tuple[str, Mapping[str, Any]]] = []
    for n in names:
        b = families[n].get("breakdown", {})
        rows += [(n, v) for v in b.get("variants", [])]
        parts = b.get("by_part", {})
        rows += [(n, v) for part in ("tone", "language") for v in parts.get(part, [])]
    notes = []
    for n in names:
        for kind, p in families[n].get("breakdown", {}).get("precision_by", {}).items():
            groups = [g for g in p["groups"] if g["flags"]]
            if groups:
                cells = ", ".join(
                    f"{g['value']} {_with_ci(g['precision'], g['precision_ci'])} "
                    f"({g['true_positives']}/{g['flags']})"
                    for g in groups
                )
                notes += ["", f"Family {n}: {kind} precision by {p['detail']}: {cells}."]
    if not rows and not notes:
        return []
    lines = [
        "",
        "## By variant",
        "",
        "Scenarios whose cases come in variants (`rating_mismatch`: tone/language/top or "
        "low stars; `hn_honest_mixed_reviews`: kind/language/stars), then the same rolled up "
        "by tone and by language. Incidents: found by a flag of their kind (recall); hard "
        "negatives: matched by any flag (flagged share, a false alert each).",
    ]
    if rows:
        lines += [
            "",
            "| family | scenario | variant | cases | found / flagged | share [95%] |",
            "|---|---|---|---:|---:|---:|",
        ]
    for n, v in rows:
        lines.append(
            f"| {n} | {v['scenario']} | {v['variant']} | {v['cases']} | {v['hits']} | "
            f"{_with_ci(v['share'], v['share_ci'])} |"
        )
    return lines + notes


def _calibration_rows(cal: Mapping[str, Any] | None) -> list[str]:
    if not cal:
        return []
    rows = [
        "",
        "## Thresholds from the false-alert target",
        "",
        f"Target {cal['target_per_10k']:g} false alerts per 10,000 benign events for all kinds "
        f"together; calibrated on family {cal['family']}'s curves "
        f"({cal['benign_events']:,} benign events; "
        "`memberstream.domain.anomaly.calibration`): a threshold goes below its default only "
        "where the 95% upper bound of its false alerts stays within its equal share of the "
        "target; while the kinds' false alerts add up to more than the target, the cutoff "
        "that saves false alerts at the least recall is raised. Cutoffs are on each kind's "
        "curve scale (1 = the default threshold; the probability for probability kinds).",
        "",
        "| kind | share /10k | default | calibrated | FA/10k there | 95% bound | recall there "
        "| decision |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for kind, c in cal["kinds"].items():
        rows.append(
            f"| {kind} | {c['share_per_10k']:.3f} | {c['default_cutoff']:g} | "
            f"{c['cutoff']:g} | {c['false_alerts_per_10k']:.2f} | {c['upper_per_10k']:.2f} | "
            f"{_f(c['recall'], 2)} | {c['decision']} |"
        )
    moved = [k for k, c in cal["kinds"].items() if c["cutoff"] != c["default_cutoff"]]
    spent = sum(c["false_alerts_per_10k"] for c in cal["kinds"].values())
    rows += [
        "",
        f"False alerts at the calibrated cutoffs, all kinds: {spent:.2f} per 10,000 "
        f"(target {cal['target_per_10k']:g}).",
        "The defaults sit at their calibrated cutoffs."
        if not moved
        else "Defaults NOT at their calibrated cutoffs: " + ", ".join(moved) + ".",
    ]
    return rows


def markdown(info: dict[str, Any], result: dict[str, Any]) -> str:
    families: dict[str, Any] = result["families"]
    names = list(families)
    lines = [
        "# Anomaly detectors: precision, recall, false alerts and curves on two families",
        "",
        f"Recorded {info['recorded_at']} on {info['machine']}. Command: `{info['command']}`.",
        "",
        *(_stream_line(n, families[n]) for n in names),
        "",
        "A flag is a true positive when its evidence shares an event with an incident that "
        "should raise its kind; every other flag of the kind is a false positive (on "
        "background traffic, on a hard negative, or on an incident of other kinds). "
        "Intervals are 95% Wilson intervals (precision's treats flags as independent, "
        "which flags on one incident are not).",
        "",
        "## Per kind",
        "",
        "| kind | "
        + " | ".join(
            f"{n}: incidents | {n}: flags | {n}: precision [95%] | {n}: recall [95%]" for n in names
        )
        + " |",
        "|---|" + "---:|---:|---:|---:|" * len(names),
    ]
    for i, kind in enumerate(k["kind"] for k in families[names[0]]["evaluation"]["kinds"]):
        cells = []
        for n in names:
            k = families[n]["evaluation"]["kinds"][i]
            assert k["kind"] == kind
            cells += [
                str(k["incidents"]),
                str(k["flags"]),
                _with_ci(k["precision"], k["precision_ci"]),
                _with_ci(k["recall"], k["recall_ci"]),
            ]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines += ["", f"Goal per kind: precision >= {GOAL_PRECISION}, recall >= {GOAL_RECALL}."]
    for n in names:
        goals = families[n]["evaluation"]["goals"]
        missed = [k for k, ok in goals.items() if not ok]
        lines.append(
            f"Family {n}: " + (f"NOT met by {', '.join(missed)}." if missed else "met by all.")
        )
    lines += [
        "",
        "## Recall per scenario",
        "",
        "Found: at least one flag of one of the scenario's kinds matches the incident.",
        "",
        "| family | scenario | kinds | incidents | found | recall [95%] | by kind | missed |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for n in names:
        for s in sorted(families[n]["evaluation"]["scenarios"], key=lambda s: s["scenario"]):
            by_kind = ", ".join(f"{k} {r:.2f}" for k, r in sorted(s["recall_by_kind"].items()))
            missed = ", ".join(s["missed"][:3]) + (" ..." if len(s["missed"]) > 3 else "")
            lines.append(
                f"| {n} | {s['scenario']} | {', '.join(s['kinds'])} | {s['incidents']} | "
                f"{s['found']} | {_with_ci(s['recall'], s['recall_ci'])} | {by_kind} | "
                f"{missed or '-'} |"
            )
    hard_rows = [(n, h) for n in names for h in families[n]["evaluation"]["hard_negatives"]]
    lines += ["", "## Hard negatives", ""]
    if hard_rows:
        lines += [
            "Benign cases that look suspicious; a case is flagged when any flag matches it.",
            "",
            "| family | scenario | cases | flagged | share [95%] | flags | flagged by kind |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for n, h in hard_rows:
            by_kind = ", ".join(f"{k} {c}" for k, c in h["flagged_by_kind"].items()) or "-"
            lines.append(
                f"| {n} | {h['scenario']} | {h['cases']} | {h['flagged']} | "
                f"{_with_ci(h['flagged_share'], h['flagged_ci'])} | {h['flags']} | {by_kind} |"
            )
    else:
        lines.append("None in the families run.")
    lines += [
        "",
        "## False alerts per 10,000 benign events",
        "",
        "Benign events: those in no incident (background plus hard negatives). False "
        "alerts: false-positive flags on benign events (an innocent member or product "
        "flagged); a flag of the wrong kind on a real incident counts against precision "
        '("other incident" below), not here.',
        "",
        "| kind | " + " | ".join(f"{n}: false alerts | {n}: per 10k" for n in names) + " |",
        "|---|" + "---:|---:|" * len(names),
    ]
    for i, kind in enumerate(k["kind"] for k in families[names[0]]["evaluation"]["kinds"]):
        cells = []
        for n in names:
            ev = families[n]["evaluation"]
            cells += [
                str(ev["kinds"][i]["false_alerts"]),
                _f(ev["false_alerts_per_10k_by_kind"][kind], 2),
            ]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    cells = []
    for n in names:
        ev = families[n]["evaluation"]
        cells += [f"**{ev['false_alerts']}**", f"**{ev['false_alerts_per_10k']:.2f}**"]
    lines += ["| all kinds | " + " | ".join(cells) + " |", ""]
    for n in names:
        ev = families[n]["evaluation"]
        src = ", ".join(
            f"{k.replace('_', ' ')} {v}" for k, v in ev["false_positives_by_source"].items()
        )
        other = "; ".join(
            f"{kind} on " + ", ".join(f"{sc} {c}" for sc, c in by.items())
            for kind, by in sorted(ev.get("other_incident_by_kind", {}).items())
        )
        if other:
            src += f" ({other})"
        lines.append(
            f"Family {n}: {ev['benign_events']:,} benign events; false positives on {src}. "
            f"Flags on no label: {ev['flags_on_normal_traffic']} "
            f"({ev['normal_flags_per_10k']:.2f} per 10,000 unlabeled events; budget "
            f"{ev['budget_per_10k']:g}). Flag records repeated (same id): "
            f"{families[n]['repeated_flag_records']}."
        )
    scale = result.get("curve_scale", 0)
    if scale > 0:
        lines += [
            "",
            "## Precision-recall curves",
            "",
            f"One run per family with every threshold at {scale:g} of its default, the "
            "cooldowns off and review_duplicate's bucket one minute (`bench.anomaly_curves`); "
            "a cutoff is swept over each flag's strength (1 = the default threshold; the "
            "probability for learned_score and rating_text_mismatch) and the default "
            "cooldowns and buckets are applied again above it. Approximate where state "
            "depends on earlier flags (cooldowns, outliers kept out of the order history, "
            "the click baseline not learning from flagged clicks): compare the default cutoff "
            "with the default run below it. FA/10k: false alerts of the kind per 10,000 "
            "benign events. All points in the JSON.",
            "",
            *_curve_rows(names, families),
        ]
    lines += _breakdown_rows(names, families)
    lines += _calibration_rows(result.get("calibration"))
    for n in names:
        cost = families[n].get("throughput")
        if cost:
            lines += [
                "",
                f"## Cost of the detectors (family {n}, through Kafka)",
                "",
                "| worker | events/s (median) |",
                "|---|---:|",
                f"| detectors on | {cost['on']:,.0f} |",
                f"| detectors off | {cost['off']:,.0f} |",
                "",
                f"Cost of the detectors: {cost['cost']:.1%} (goal < {GOAL_COST:.0%}: "
                f"{'met' if cost['cost'] < GOAL_COST else 'NOT met'}); on/off per round: "
                + ", ".join(f"{x:.2f}" for x in cost["ratios"])
                + ".",
            ]
    timing = ", ".join(
        f"{n}: " + ", ".join(f"{k} {v:.0f}" for k, v in families[n]["timings_s"].items())
        for n in names
    )
    lines += ["", f"Timings (s): {timing}; total {result['wall_s']:.0f} s."]
    floors = result.get("floors")
    if floors:
        broken = floors["broken"]
        lines.append(
            f"Floors ({floors['file']}): "
            + ("all met." if not broken else "BROKEN: " + "; ".join(broken) + ".")
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", choices=("a", "b", "both"), default="both")
    p.add_argument("--small", action="store_true", help="the small slice (CI): see SMALL")
    p.add_argument("--members", type=int, help="members (a: 2000; b: FamilyConfig's default)")
    p.add_argument("--days", type=float, help="days (a: 60; b: FamilyConfig's default)")
    p.add_argument("--warmup-days", type=float, help="no incident before this (a: 8)")
    p.add_argument("--seed", type=int, default=12, help="family a")
    p.add_argument("--seed-b", type=int, help="family b (default: FamilyConfig's)")
    p.add_argument("--incidents-per-day", type=float, default=1.0, help="family a, per scenario")
    p.add_argument(
        "--no-refs",
        action="store_true",
        help="family a: orders carry no payment, shipping or device references",
    )
    p.add_argument("--per-scenario", type=int, help="family b: incidents per scenario")
    p.add_argument(
        "--curve-scale",
        type=float,
        default=CURVE_SCALE,
        help="thresholds of the curve run as a fraction of the defaults (0: no curves)",
    )
    p.add_argument("--floors", type=Path, help="TOML floors; exit 1 when one is broken")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--bootstrap", default=Settings().kafka_bootstrap_servers)
    p.add_argument("--offline", action="store_true", help="no Kafka: flags from the processors")
    p.add_argument(
        "--out",
        type=Path,
        help="results folder (default bench/results; with --small nothing is written unless set)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not 0 <= args.curve_scale <= 1:
        raise SystemExit("--curve-scale must be in [0, 1]")
    floors = tomllib.loads(args.floors.read_text()) if args.floors else None
    started = time.monotonic()
    names = FAMILIES if args.family == "both" else (args.family,)
    settings = Settings(kafka_bootstrap_servers=args.bootstrap)
    stage = stage_from_settings(settings)
    families: dict[str, Any] = {}
    for name in names:
        t0 = time.monotonic()
        fam = (build_family_a if name == "a" else build_family_b)(args)
        fam.timings["build_s"] = time.monotonic() - t0
        s = fam.stream
        print(
            f"family {name}: {s['events']:,} events, {s['incidents']} incidents, "
            f"{s['hard_negatives']} hard negatives"
        )
        families[name] = evaluate_family(fam, args, settings, stage)
    result: dict[str, Any] = {
        "families": families,
        "curve_scale": args.curve_scale,
        "curve_lowest_cutoffs": {
            k: lowest_cutoff(k, settings.anomaly, args.curve_scale) for k in KINDS
        },
        "wall_s": time.monotonic() - started,
    }
    a = families.get("a", {})
    if "curves" in a:
        cal = calibrate(
            a["curves"],
            a["evaluation"]["benign_events"],
            settings.anomaly.target_false_alerts_per_10k,
        )
        result["calibration"] = {
            "family": "a",
            "target_per_10k": settings.anomaly.target_false_alerts_per_10k,
            "benign_events": a["evaluation"]["benign_events"],
            "kinds": {k: c.as_dict() for k, c in cal.items()},
        }
    broken: list[str] = []
    if floors is not None:
        broken = check_floors(families, floors)
        result["floors"] = {"file": str(args.floors), "broken": broken}
    info = run_info("bench.anomalies", argv) | {
        "partitions": args.partitions,
        "rounds": args.rounds,
        "rate_method": "slope between 10% and 90% of input records committed",
    }
    md = markdown(info, result)
    print(md)
    out = args.out if args.out is not None or args.small else Path(__file__).parent / "results"
    if out is not None:
        save_results(out, "anomalies", info, result, md)
    for line in broken:
        print(f"floor broken: {line}", file=sys.stderr)
    print(f"bench.anomalies: {time.monotonic() - started:.0f} s")
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
