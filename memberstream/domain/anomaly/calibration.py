"""Thresholds from a false-alert target instead of hand-picked counts.

``AnomalySettings.target_false_alerts_per_10k`` says how many false alerts per 10,000
benign events the detectors *together* may raise. Each kind has a strength on a common
scale, 1.0 at its default threshold, or the probability for the probability kinds
(``bench.anomaly_curves``), and a precision-recall curve over a cutoff on that
strength, measured on traffic with labeled incidents and labeled benign events (the
tuning family, or a platform's own labeled history). :func:`calibrate` picks every
kind's cutoff from the curves:

1. Each kind starts at its default. It goes lower only where the benign traffic shows,
   with 95% confidence, that its equal share of the target (``target / kinds``) holds
   there: the one-sided Poisson upper bound of the false alerts counted at the cutoff,
   per 10,000 benign events, is within the share. A tuning set without a benign tail at
   some cutoff is not evidence that the tail is absent, so the point estimate alone
   never lowers a threshold; with none counted the bound is about ``3 / benign events``,
   so a share of 0.125 per 10,000 needs 240,000 benign events before any can go down.
2. While the kinds' measured false alerts add up to more than the target, the cutoff
   that saves false alerts at the least recall is raised one step (to its kind's next
   cutoff with fewer false alerts): the budget goes where it buys the most recall, not
   in equal slices, so a kind that raises no false alert leaves its share to the others.
   When no raise saves any, the target is reported as not met.

:func:`apply_cutoffs` turns the chosen cutoffs into settings: a rule kind's
thresholds are scaled by its cutoff (:func:`scale_kind`, the same scaling the curve
run uses to lower them), a probability kind's threshold is the cutoff itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy.stats import chi2

from memberstream.domain.anomaly.evaluation import PRPoint
from memberstream.domain.anomaly.settings import AnomalySettings

PROBABILITY_SETTINGS: Mapping[str, tuple[str, str]] = {
    "learned_score": ("learned", "threshold"),
    "rating_text_mismatch": ("rating_text_mismatch", "min_probability"),
}
"""Where each probability kind keeps its threshold: (section, field) of the settings."""
PROBABILITY_KINDS = frozenset(PROBABILITY_SETTINGS)
CONFIDENCE = 0.95


def budgets(target_per_10k: float, kinds: Iterable[str]) -> dict[str, float]:
    """The target split equally among ``kinds``."""
    names = list(kinds)
    if not names:
        return {}
    return {k: target_per_10k / len(names) for k in names}


def poisson_upper(count: int, confidence: float = CONFIDENCE) -> float:
    """One-sided upper confidence bound of a Poisson mean with ``count`` observed."""
    return float(chi2.ppf(confidence, 2 * count + 2) / 2)


@dataclass(frozen=True)
class KindCalibration:
    kind: str
    share_per_10k: float
    """The kind's equal share of the target (what lowering is held to)."""
    default_cutoff: float
    cutoff: float
    false_alerts_per_10k: float
    """Measured at ``cutoff`` on the calibration traffic."""
    upper_per_10k: float
    """Its 95% upper bound."""
    recall: float | None
    precision: float | None
    decision: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


RAISED = "raised: the kinds' false alerts together exceeded the target"


def _upper(p: PRPoint, benign_events: int) -> float:
    count = round(p.false_alerts_per_10k * benign_events / 10_000)
    return poisson_upper(count) / benign_events * 10_000


def _start(
    kind: str, points: Sequence[PRPoint], default_cutoff: float, share: float, benign: int
) -> tuple[PRPoint, str]:
    """Step 1: the default, or lower where the bound holds at every cutoff up to it."""
    at_default = min(points, key=lambda p: abs(p.cutoff - default_cutoff))
    if not math.isclose(at_default.cutoff, default_cutoff, abs_tol=1e-9):
        raise ValueError(f"{kind}: the curve has no point at the default cutoff {default_cutoff}")
    lowest = at_default
    for p in reversed([p for p in points if p.cutoff < default_cutoff]):
        if _upper(p, benign) > share:
            break
        lowest = p
    if lowest is at_default:
        return at_default, "default"
    return lowest, "lowered: the 95% bound of its false alerts is within its share"


def calibrate(
    curves: Mapping[str, Mapping[str, Any]], benign_events: int, target_per_10k: float
) -> dict[str, KindCalibration]:
    """Every kind's cutoff for the target (the rule in the module doc); ``curves`` as
    ``bench.anomaly_curves.curves`` returns them."""
    if benign_events <= 0:
        raise ValueError("calibration needs benign events")
    points = {
        kind: sorted((PRPoint(**p) for p in curve["points"]), key=lambda p: p.cutoff)
        for kind, curve in curves.items()
    }
    if any(not pts for pts in points.values()):
        raise ValueError("every kind needs curve points")
    shares = budgets(target_per_10k, curves)
    defaults = {kind: float(curve["default_cutoff"]) for kind, curve in curves.items()}
    chosen: dict[str, PRPoint] = {}
    decision: dict[str, str] = {}
    for kind, pts in points.items():
        chosen[kind], decision[kind] = _start(
            kind, pts, defaults[kind], shares[kind], benign_events
        )

    def total() -> float:
        return math.fsum(p.false_alerts_per_10k for p in chosen.values())

    while total() > target_per_10k + 1e-12:
        best: tuple[float, str, PRPoint] | None = None
        for kind, p in chosen.items():
            q = next(
                (
                    q
                    for q in points[kind]
                    if q.cutoff > p.cutoff and q.false_alerts_per_10k < p.false_alerts_per_10k
                ),
                None,
            )
            if q is None:
                continue
            lost = max((p.recall or 0.0) - (q.recall or 0.0), 0.0)
            cost = lost / (p.false_alerts_per_10k - q.false_alerts_per_10k)
            if best is None or cost < best[0]:
                best = (cost, kind, q)
        if best is None:
            for kind in chosen:
                decision[kind] += "; target not met"
            break
        _, kind, q = best
        chosen[kind], decision[kind] = q, RAISED
    return {
        kind: KindCalibration(
            kind=kind,
            share_per_10k=shares[kind],
            default_cutoff=defaults[kind],
            cutoff=p.cutoff,
            false_alerts_per_10k=p.false_alerts_per_10k,
            upper_per_10k=_upper(p, benign_events),
            recall=p.recall,
            precision=p.precision,
            decision=decision[kind],
        )
        for kind, p in chosen.items()
    }


def scale_kind(d: dict[str, Any], kind: str, scale: float) -> None:
    """Scale the thresholds of rule ``kind`` in ``d`` (``AnomalySettings.model_dump()``)
    by ``scale``: counts, z-scores and totals times ``scale``, the bot regularity limit
    ``max_cv`` divided by it; probability kinds are left alone."""
    if scale <= 0:
        raise ValueError(f"scale {scale} must be positive")
    if kind == "click_burst":
        cb = d["click_burst"]
        cb["min_clicks"] = max(1, round(cb["min_clicks"] * scale))
        cb["baseline_multiplier"] = max(1.01, cb["baseline_multiplier"] * scale)
        cb["hard_cap"] = max(1, round(cb["hard_cap"] * scale))
    elif kind == "bot_pattern":
        bp = d["bot_pattern"]
        bp["max_cv"] = bp["max_cv"] / scale
        bp["distinct_products_per_min"] = max(1, round(bp["distinct_products_per_min"] * scale))
    elif kind == "order_value_outlier":
        ov = d["order_value"]
        for key in ("z_threshold", "min_total", "new_instrument_min_total", "population_cap"):
            ov[key] = ov[key] * scale
    elif kind == "order_velocity":
        vel = d["order_velocity"]
        vel["max_orders"] = max(2, round(vel["max_orders"] * scale))
    elif kind == "review_bombing":
        rb = d["review_bombing"]
        rb["min_unverified_low"] = max(2, round(rb["min_unverified_low"] * scale))
        rb["min_low"] = max(2, round(rb["min_low"] * scale))
        rb["baseline_multiplier"] = max(1.01, rb["baseline_multiplier"] * scale)
        rb["min_low_share"] = min(1.0, rb["min_low_share"] * scale)
    elif kind == "review_duplicate":
        rd = d["review_duplicate"]
        rd["promo_similarity"] = min(1.0, rd["promo_similarity"] * scale)
        rd["min_members"] = max(2, round(rd["min_members"] * scale))
    elif kind not in PROBABILITY_KINDS:
        raise ValueError(f"unknown kind {kind!r}")


def probability_threshold(settings: AnomalySettings, kind: str) -> float:
    """Probability ``kind``'s threshold in ``settings``."""
    section, name = PROBABILITY_SETTINGS[kind]
    return float(getattr(getattr(settings, section), name))


def probability_offset(settings: AnomalySettings, kind: str, language: Any) -> float:
    """How far ``language``'s own cutoff of probability ``kind`` sits from the shared one
    (``by_language`` overrides; 0 without one)."""
    section, name = PROBABILITY_SETTINGS[kind]
    conf = getattr(settings, section)
    override = getattr(conf, "by_language", {}).get(language)
    value = getattr(override, name, None) if override is not None else None
    return 0.0 if value is None else float(value) - float(getattr(conf, name))


def set_probability(d: dict[str, Any], kind: str, probability: float) -> None:
    """Set probability ``kind``'s threshold in ``d`` (``AnomalySettings.model_dump()``).

    Per-language overrides of it move by the same amount (kept within (0.5, 1]), so a
    cutoff on the kind's curve keeps each language's offset from the shared one."""
    if kind not in PROBABILITY_SETTINGS:
        raise ValueError(f"{kind!r} is not a probability kind")
    section, name = PROBABILITY_SETTINGS[kind]
    delta = probability - d[section][name]
    d[section][name] = probability
    for override in (d[section].get("by_language") or {}).values():
        if override.get(name) is not None:
            override[name] = min(1.0, max(math.nextafter(0.5, 1.0), override[name] + delta))


def apply_cutoffs(settings: AnomalySettings, cutoffs: Mapping[str, float]) -> AnomalySettings:
    """``settings`` with each kind's threshold moved to its calibrated cutoff."""
    d = settings.model_dump()
    for kind, cutoff in cutoffs.items():
        if kind in PROBABILITY_KINDS:
            set_probability(d, kind, cutoff)
        elif not math.isclose(cutoff, 1.0):
            scale_kind(d, kind, cutoff)
    return AnomalySettings.model_validate(d)
