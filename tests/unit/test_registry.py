"""The model registry: content-addressed versions, manifests, verify, promote, rollback.

Expected versions and hashes are computed here with hashlib over the bytes written,
not with the registry's own helpers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import re
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memberstream import __version__
from memberstream.domain.anomaly.order_features import BEHAVIOUR_FEATURES
from memberstream.domain.taxonomy import Taxonomy
from memberstream.errors import MemberstreamError, ModelError
from memberstream.ml import registry as registry_module
from memberstream.ml.category_heads import LinearHead
from memberstream.ml.learned_scorer import LearnedScorer, fit_logistic
from memberstream.ml.registry import (
    ARTIFACT_FILES,
    TASKS,
    ModelRegistry,
    ModelVersion,
    RegistryError,
    code_version,
    load_check,
)
from memberstream.ml.sentiment import SentimentHead

from .text_doubles import DIM

SENTIMENT = "sentiment_head.npz"
INTEREST = "interest_head.npz"
ANOMALY = "anomaly_scorer.npz"


# --- artifacts -----------------------------------------------------------------------------


def sentiment_file(directory: Path, seed: int = 0, dim: int = DIM) -> Path:
    rng = np.random.default_rng(seed)
    head = SentimentHead(
        rng.normal(size=(2, dim, 3)),
        rng.normal(size=(2, 3)),
        ngram_weights=rng.normal(size=(64, 3)),
        lexicon_weights=rng.normal(size=(2, 4, 3)),
        lexicon={"good": 1.9, "bad": -2.5},
    )
    return head.save(directory / f"s{seed}-{dim}")


def interest_file(directory: Path, seed: int = 0, dim: int = DIM, ids: Any = None) -> Path:
    rng = np.random.default_rng(seed)
    k = 4 if ids is None else len(ids)
    ids = ids or tuple(f"c{i}" for i in range(k))
    path = directory / f"i{seed}-{dim}" / INTEREST
    path.parent.mkdir(parents=True)
    LinearHead(rng.normal(size=(k, dim)), rng.normal(size=k), tuple(ids)).save(path)
    return path


def anomaly_file(directory: Path, seed: int = 0, embedding_dim: int = DIM) -> Path:
    rng = np.random.default_rng(seed)
    width = len(BEHAVIOUR_FEATURES) + embedding_dim
    x = rng.normal(size=(60, width))
    y = (x[:, 0] + 0.3 * rng.normal(size=60) > 0.5).astype(np.float64)
    mean, scale, weights, bias = fit_logistic(x, y)
    path = directory / f"a{seed}-{embedding_dim}" / ANOMALY
    path.parent.mkdir(parents=True)
    LearnedScorer(mean, scale, weights, bias, embedding_dim).save(path)
    return path


def garbage_file(directory: Path, name: str = SENTIMENT) -> Path:
    path = directory / "garbage" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 this is not a zip archive at all")
    return path


def expected_version(task: str, files: dict[str, bytes]) -> tuple[str, str]:
    """(version, digest), computed from the documented rule: sha256 over the lines
    ``"<sha256 of file>  <name>\\n"`` in name order."""
    if len(files) == 1:  # one artifact: its own sha256
        digest = hashlib.sha256(next(iter(files.values()))).hexdigest()
    else:
        lines = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in sorted(files))
        digest = hashlib.sha256(lines.encode()).hexdigest()
    return f"{task}@{digest[:12]}", digest


META: dict[str, Any] = {
    "parent": None,
    "encoder_version": "word-hash@test",
    "data_window": {"from": "2024-05-01T00:00:00Z", "to": None},
    "samples": {"train": 120, "eval": 30},
    "metrics": {"macro_f1": 0.71, "per_class": [0.7, 0.6, 0.8]},
    "code_version": "0.1.0+gabc1234",
}


def register(reg: ModelRegistry, task: str, path: Path, **kw: Any) -> ModelVersion:
    return reg.register(task, {ARTIFACT_FILES[task]: path}, **{**META, **kw})


@pytest.fixture
def reg(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src"
    path.mkdir()
    return path


def history_lines(reg: ModelRegistry, task: str) -> list[dict[str, Any]]:
    text = (reg.root / task / "history.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


# --- register ------------------------------------------------------------------------------


def test_artifact_names_are_the_loaders() -> None:
    assert TASKS == ("sentiment", "interest", "anomaly")
    assert ARTIFACT_FILES == {"sentiment": SENTIMENT, "interest": INTEREST, "anomaly": ANOMALY}
    assert issubclass(RegistryError, ModelError)
    assert issubclass(RegistryError, MemberstreamError)
    assert RegistryError.exit_code == 66


def test_register_is_content_addressed_and_idempotent(reg: ModelRegistry, src: Path) -> None:
    path = sentiment_file(src)
    raw = path.read_bytes()
    version, _ = expected_version("sentiment", {SENTIMENT: raw})

    mv = register(reg, "sentiment", path)
    assert mv.version == version
    assert mv.task == "sentiment"
    assert mv.path == reg.root / "sentiment" / "versions" / version.split("@")[1]
    assert mv.artifact.read_bytes() == raw
    assert sorted(p.name for p in mv.path.iterdir()) == ["manifest.json", SENTIMENT]
    manifest_before = (mv.path / "manifest.json").read_bytes()

    # The same bytes from another place, with other metadata: the same version, untouched.
    copy = src / "elsewhere" / SENTIMENT
    copy.parent.mkdir()
    copy.write_bytes(raw)
    again = register(reg, "sentiment", copy, metrics={"macro_f1": 0.99}, parent="x@y")
    assert again.version == version
    assert again.manifest["metrics"] == META["metrics"]
    assert (mv.path / "manifest.json").read_bytes() == manifest_before
    assert len(reg.versions("sentiment")) == 1

    other = register(reg, "sentiment", sentiment_file(src, seed=1))
    assert other.version != version
    assert {v.version for v in reg.versions("sentiment")} == {version, other.version}
    # Nothing temporary is left behind.
    assert not [p for p in (reg.root / "sentiment" / "versions").iterdir() if p.name[0] == "."]


def test_manifest_fields(reg: ModelRegistry, src: Path) -> None:
    path = interest_file(src)
    notes = src / "notes.txt"
    notes.write_text("trained on the May window\n")
    files = {INTEREST: path.read_bytes(), "notes.txt": notes.read_bytes()}
    version, digest = expected_version("interest", files)

    mv = reg.register(
        "interest",
        {INTEREST: path, "notes.txt": notes},
        **{**META, "created_at": "2024-05-02T10:30:00+02:00"},
        extra={"taxonomy": "default", "seed": 7},
    )
    on_disk = json.loads((mv.path / "manifest.json").read_text())
    assert on_disk == mv.manifest
    assert on_disk == {
        "task": "interest",
        "version": version,
        "digest": digest,
        "parent": None,
        "encoder_version": "word-hash@test",
        "data_window": {"from": "2024-05-01T00:00:00Z", "to": None},
        "samples": {"train": 120, "eval": 30},
        "metrics": {"macro_f1": 0.71, "per_class": [0.7, 0.6, 0.8]},
        "code_version": "0.1.0+gabc1234",
        "created_at": "2024-05-02T08:30:00.000000+00:00",
        "files": {n: hashlib.sha256(b).hexdigest() for n, b in files.items()},
        "taxonomy": "default",
        "seed": 7,
    }


def test_default_created_at_is_utc_now_and_parent_is_resolved(
    reg: ModelRegistry, src: Path
) -> None:
    before = datetime.now(UTC)
    first = register(reg, "anomaly", anomaly_file(src))
    after = datetime.now(UTC)
    created = datetime.fromisoformat(first.manifest["created_at"])
    assert created.utcoffset() is not None and created.utcoffset().total_seconds() == 0
    assert before <= created <= after

    sha = first.version.split("@")[1]
    child = register(reg, "anomaly", anomaly_file(src, seed=1), parent=sha[:6])
    assert child.manifest["parent"] == first.version
    assert child.parent == first.version
    # A parent outside the registry (e.g. the head bundled with the model) is kept as given.
    orphan = register(reg, "anomaly", anomaly_file(src, seed=2), parent="learned@0123456789ab")
    assert orphan.manifest["parent"] == "learned@0123456789ab"


def test_versions_are_oldest_first(reg: ModelRegistry, src: Path) -> None:
    late = register(reg, "sentiment", sentiment_file(src, 0), created_at="2024-06-01T00:00:00Z")
    early = register(reg, "sentiment", sentiment_file(src, 1), created_at="2024-05-01T00:00:00Z")
    other = register(reg, "interest", interest_file(src), created_at="2024-05-15T00:00:00Z")
    assert [v.version for v in reg.versions("sentiment")] == [early.version, late.version]
    assert [v.version for v in reg.versions()] == [early.version, other.version, late.version]
    assert reg.versions("anomaly") == []


def test_register_refuses_bad_input(reg: ModelRegistry, src: Path) -> None:
    path = sentiment_file(src)
    with pytest.raises(RegistryError, match="unknown task 'summary'"):
        reg.register("summary", {SENTIMENT: path}, **META)
    with pytest.raises(RegistryError, match=r"needs its artifact sentiment_head\.npz"):
        reg.register("sentiment", {"other.npz": path}, **META)
    with pytest.raises(RegistryError, match="not a file"):
        reg.register("sentiment", {SENTIMENT: src / "missing.npz"}, **META)
    with pytest.raises(RegistryError, match="usable file name"):
        reg.register("sentiment", {SENTIMENT: path, "../escape": path}, **META)
    with pytest.raises(RegistryError, match="overwrite"):
        reg.register("sentiment", {SENTIMENT: path}, **META, extra={"version": "mine"})
    with pytest.raises(RegistryError, match="NaN"):
        register(reg, "sentiment", path, metrics={"auc": float("nan")})
    with pytest.raises(RegistryError, match="time zone"):
        register(reg, "sentiment", path, created_at="2024-05-01T00:00:00")
    assert reg.versions() == []


def test_a_stale_temporary_directory_is_cleaned_up(reg: ModelRegistry, src: Path) -> None:
    stale = reg.root / "sentiment" / "versions" / ".tmp-123-deadbeef"
    stale.mkdir(parents=True)
    (stale / SENTIMENT).write_bytes(b"half")
    register(reg, "sentiment", sentiment_file(src))
    assert not stale.exists()


# --- get and verify ------------------------------------------------------------------------


def two_sharing_a_prefix(reg: ModelRegistry, src: Path) -> tuple[ModelVersion, ModelVersion]:
    """Versions that differ only by a notes file, until two share their first hex digit."""
    head = sentiment_file(src)
    seen: dict[str, ModelVersion] = {}
    for i in range(40):
        notes = src / f"notes{i}.txt"
        notes.write_text(f"run {i}\n")
        mv = reg.register("sentiment", {SENTIMENT: head, "notes.txt": notes}, **META)
        first = mv.version.split("@")[1][0]
        if first in seen:
            return seen[first], mv
        seen[first] = mv
    raise AssertionError("17 versions always share a first hex digit")


def test_get_by_full_name_sha_and_prefix(reg: ModelRegistry, src: Path) -> None:
    a, b = two_sharing_a_prefix(reg, src)
    sha_a, sha_b = a.version.split("@")[1], b.version.split("@")[1]
    assert reg.get("sentiment", a.version) == a
    assert reg.get("sentiment", sha_a) == a
    common = 1
    while sha_a[common] == sha_b[common]:
        common += 1
    assert reg.get("sentiment", sha_a[: common + 1]) == a
    assert reg.get("sentiment", f"sentiment@{sha_b[: common + 1]}") == b
    assert reg.get("sentiment", a.manifest["digest"]) == a  # the full 64-digit digest too

    with pytest.raises(RegistryError, match="ambiguous") as ambiguous:
        reg.get("sentiment", sha_a[:common])
    assert a.version in str(ambiguous.value) and b.version in str(ambiguous.value)
    missing = sha_a[:-1] + ("0" if sha_a[-1] != "0" else "1")
    with pytest.raises(RegistryError, match="no sentiment version"):
        reg.get("sentiment", missing)
    with pytest.raises(RegistryError, match="not a sentiment version"):
        reg.get("sentiment", f"interest@{sha_a}")
    with pytest.raises(RegistryError, match="not a sentiment version"):
        reg.get("sentiment", "../../etc")
    with pytest.raises(RegistryError, match="unknown task"):
        reg.get("summary", sha_a)


def test_verify_catches_a_flipped_byte(reg: ModelRegistry, src: Path) -> None:
    mv = register(reg, "sentiment", sentiment_file(src))
    reg.verify(mv)
    raw = bytearray(mv.artifact.read_bytes())
    recorded = hashlib.sha256(raw).hexdigest()
    raw[len(raw) // 2] ^= 0x01
    mv.artifact.write_bytes(bytes(raw))
    actual = hashlib.sha256(raw).hexdigest()
    with pytest.raises(RegistryError) as caught:
        reg.verify(mv)
    message = str(caught.value)
    assert SENTIMENT in message and recorded in message and actual in message


def test_verify_catches_missing_and_extra_files(reg: ModelRegistry, src: Path) -> None:
    mv = register(reg, "interest", interest_file(src))
    (mv.path / "stowaway.bin").write_bytes(b"x")
    with pytest.raises(RegistryError, match=r"stowaway\.bin"):
        reg.verify(mv)
    (mv.path / "stowaway.bin").unlink()
    mv.artifact.unlink()
    with pytest.raises(RegistryError, match=re.escape(f"{INTEREST} is missing")):
        reg.verify(mv)


# --- promote -------------------------------------------------------------------------------


def test_promote_sets_production_and_logs(reg: ModelRegistry, src: Path) -> None:
    a = register(reg, "sentiment", sentiment_file(src, 0))
    b = register(reg, "sentiment", sentiment_file(src, 1))
    assert reg.production("sentiment") is None
    assert reg.history("sentiment") == []

    entry = reg.promote(
        "sentiment", a.version, check=load_check("sentiment", DIM), reason="first", actor="ci"
    )
    assert reg.production("sentiment") == a
    assert (reg.root / "sentiment" / "PRODUCTION").read_text().strip() == a.version
    assert {k: entry[k] for k in ("action", "task", "version", "previous", "reason", "actor")} == {
        "action": "promote",
        "task": "sentiment",
        "version": a.version,
        "previous": None,
        "reason": "first",
        "actor": "ci",
    }
    assert datetime.fromisoformat(entry["at"]).utcoffset().total_seconds() == 0

    second = reg.promote("sentiment", b.version.split("@")[1][:8], check=load_check("sentiment"))
    assert second["previous"] == a.version and second["version"] == b.version
    assert reg.production("sentiment") == b
    assert history_lines(reg, "sentiment") == [entry, second]
    assert reg.history("sentiment") == [entry, second]

    # Promoting the production version again changes and logs nothing.
    history_before = (reg.root / "sentiment" / "history.jsonl").read_bytes()
    same = reg.promote("sentiment", b.version, check=lambda mv: pytest.fail("not checked"))
    assert same["action"] == "unchanged" and same["version"] == b.version
    assert (reg.root / "sentiment" / "history.jsonl").read_bytes() == history_before


def test_load_check_passes_real_heads_of_every_task(reg: ModelRegistry, src: Path) -> None:
    taxonomy = Taxonomy.load()
    artifacts = {
        "sentiment": sentiment_file(src),
        "interest": interest_file(src, ids=taxonomy.ids),
        "anomaly": anomaly_file(src),
    }
    for task, path in artifacts.items():
        mv = register(reg, task, path)
        load_check(task, DIM, taxonomy=taxonomy if task == "interest" else None)(mv)
        reg.promote(task, mv.version, check=load_check(task, DIM))
        assert reg.production(task) == mv
    # A scorer without the embedding feature fits any encoder.
    plain = register(reg, "anomaly", anomaly_file(src, seed=1, embedding_dim=0))
    load_check("anomaly", 384)(plain)


def test_an_unloadable_artifact_is_refused(reg: ModelRegistry, src: Path) -> None:
    good = register(reg, "sentiment", sentiment_file(src))
    reg.promote("sentiment", good.version, check=load_check("sentiment", DIM))
    production_before = (reg.root / "sentiment" / "PRODUCTION").read_bytes()
    history_before = (reg.root / "sentiment" / "history.jsonl").read_bytes()

    bad = register(reg, "sentiment", garbage_file(src))
    with pytest.raises(RegistryError, match="refused") as caught:
        reg.promote("sentiment", bad.version, check=load_check("sentiment", DIM))
    assert bad.version in str(caught.value) and SENTIMENT in str(caught.value)
    assert reg.production("sentiment") == good
    assert (reg.root / "sentiment" / "PRODUCTION").read_bytes() == production_before
    assert (reg.root / "sentiment" / "history.jsonl").read_bytes() == history_before


@pytest.mark.parametrize("task", ["anomaly", "interest"])
def test_unloadable_heads_of_other_tasks_are_refused(
    reg: ModelRegistry, src: Path, task: str
) -> None:
    bad = register(reg, task, garbage_file(src, ARTIFACT_FILES[task]))
    with pytest.raises(RegistryError, match="refused"):
        reg.promote(task, bad.version, check=load_check(task))
    assert reg.production(task) is None
    assert not (reg.root / task / "history.jsonl").exists()


@pytest.mark.parametrize(
    ("task", "make"),
    [
        ("sentiment", lambda d: sentiment_file(d, dim=8)),
        ("interest", lambda d: interest_file(d, dim=8)),
        ("anomaly", lambda d: anomaly_file(d, embedding_dim=8)),
    ],
)
def test_a_dim_mismatch_is_refused(reg: ModelRegistry, src: Path, task: str, make: Any) -> None:
    mv = register(reg, task, make(src))
    with pytest.raises(RegistryError, match="refused") as caught:
        reg.promote(task, mv.version, check=load_check(task, DIM))
    assert "8-d" in str(caught.value) and f"{DIM}-d" in str(caught.value)
    assert reg.production(task) is None
    reg.promote(task, mv.version, check=load_check(task, 8))  # right for an 8-d encoder
    assert reg.production(task) == mv


def test_interest_categories_are_checked_against_the_taxonomy(
    reg: ModelRegistry, src: Path
) -> None:
    mv = register(reg, "interest", interest_file(src, ids=("a", "b", "c")))
    with pytest.raises(RegistryError, match="categories differ"):
        load_check("interest", DIM, taxonomy=Taxonomy.load())(mv)


def test_a_check_of_another_task_or_an_unknown_task_fails(reg: ModelRegistry, src: Path) -> None:
    mv = register(reg, "interest", interest_file(src))
    with pytest.raises(RegistryError, match="not a sentiment version"):
        load_check("sentiment")(mv)
    with pytest.raises(RegistryError, match="unknown task"):
        load_check("summary")


def test_a_changed_artifact_is_not_promoted(reg: ModelRegistry, src: Path) -> None:
    mv = register(reg, "sentiment", sentiment_file(src))
    with mv.artifact.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(RegistryError, match="sha256"):
        reg.promote("sentiment", mv.version)
    assert reg.production("sentiment") is None


# --- rollback ------------------------------------------------------------------------------


def promoted(reg: ModelRegistry, src: Path, n: int) -> list[ModelVersion]:
    out = [register(reg, "sentiment", sentiment_file(src, seed)) for seed in range(n)]
    for mv in out:
        reg.promote("sentiment", mv.version)
    return out


def test_rollback_steps_back_not_a_toggle(reg: ModelRegistry, src: Path) -> None:
    a, b, c = promoted(reg, src, 3)
    first = reg.rollback("sentiment", check=load_check("sentiment", DIM), reason="bad", actor="me")
    assert reg.production("sentiment") == b
    assert {k: first[k] for k in ("action", "version", "previous", "replaced", "reason")} == {
        "action": "rollback",
        "version": b.version,
        "previous": a.version,
        "replaced": c.version,
        "reason": "bad",
    }
    second = reg.rollback("sentiment")
    assert reg.production("sentiment") == a
    assert (second["version"], second["previous"], second["replaced"]) == (
        a.version,
        None,
        b.version,
    )
    with pytest.raises(RegistryError, match="no earlier sentiment version"):
        reg.rollback("sentiment")
    assert reg.production("sentiment") == a
    assert [e["action"] for e in history_lines(reg, "sentiment")] == ["promote"] * 3 + [
        "rollback"
    ] * 2


def test_rollback_after_a_version_was_promoted_twice(reg: ModelRegistry, src: Path) -> None:
    a, b = promoted(reg, src, 2)
    reg.promote("sentiment", a.version)  # A, B, A
    assert reg.rollback("sentiment")["version"] == b.version
    assert reg.rollback("sentiment")["version"] == a.version
    with pytest.raises(RegistryError):
        reg.rollback("sentiment")


def test_promote_after_rollback_then_rollback(reg: ModelRegistry, src: Path) -> None:
    a, b, c = promoted(reg, src, 3)
    reg.rollback("sentiment")  # -> B
    d = register(reg, "sentiment", sentiment_file(src, 9))
    entry = reg.promote("sentiment", d.version)
    assert entry["previous"] == b.version
    assert reg.rollback("sentiment")["version"] == b.version
    assert reg.rollback("sentiment")["version"] == a.version
    assert reg.production("sentiment") == a
    assert c.version not in {e["version"] for e in reg.history("sentiment")[3:]}


def test_rollback_without_a_previous_version_raises(reg: ModelRegistry, src: Path) -> None:
    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback("sentiment")
    (a,) = promoted(reg, src, 1)
    with pytest.raises(RegistryError, match="no earlier"):
        reg.rollback("sentiment")
    assert reg.production("sentiment") == a


def test_a_refused_rollback_changes_nothing(reg: ModelRegistry, src: Path) -> None:
    _, b = promoted(reg, src, 2)
    before = (reg.root / "sentiment" / "history.jsonl").read_bytes()

    def refuse(mv: ModelVersion) -> None:
        raise RuntimeError("the worker cannot load it")

    with pytest.raises(RegistryError, match=r"refused .*the worker cannot load it"):
        reg.rollback("sentiment", check=refuse)
    assert reg.production("sentiment") == b
    assert (reg.root / "sentiment" / "history.jsonl").read_bytes() == before


def test_a_truncated_last_history_line_is_tolerated(
    reg: ModelRegistry, src: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = promoted(reg, src, 2)
    path = reg.root / "sentiment" / "history.jsonl"
    with path.open("ab") as f:
        f.write(b'{"action": "promote", "task": "sentim')  # a crash mid-append
    with caplog.at_level(logging.WARNING, logger="memberstream.ml.registry"):
        entries = reg.history("sentiment")
    assert [e["version"] for e in entries] == [a.version, b.version]
    assert "line 3" in caplog.text

    entry = reg.rollback("sentiment")
    assert entry["version"] == a.version
    assert reg.production("sentiment") == a
    lines = path.read_bytes().split(b"\n")
    assert lines[2] == b'{"action": "promote", "task": "sentim'  # kept apart, not merged
    assert json.loads(lines[3]) == entry
    assert [e["action"] for e in reg.history("sentiment")] == ["promote", "promote", "rollback"]


def test_a_crash_between_log_and_production_is_finished(reg: ModelRegistry, src: Path) -> None:
    a, b = promoted(reg, src, 2)
    c = register(reg, "sentiment", sentiment_file(src, 5))
    logged = {"action": "promote", "task": "sentiment", "version": c.version}
    with (reg.root / "sentiment" / "history.jsonl").open("a") as f:
        f.write(json.dumps({**logged, "previous": b.version, "replaced": b.version}) + "\n")
    assert reg.production("sentiment") == b  # PRODUCTION not yet switched
    assert reg.rollback("sentiment")["version"] == b.version  # finished to C, then back
    assert reg.rollback("sentiment")["version"] == a.version


def test_unknown_tasks_are_refused_everywhere(reg: ModelRegistry) -> None:
    for call in (
        lambda: reg.promote("summary", "abc"),
        lambda: reg.rollback("summary"),
        lambda: reg.production("summary"),
        lambda: reg.history("summary"),
        lambda: reg.versions("summary"),
    ):
        with pytest.raises(RegistryError, match="unknown task"):
            call()


def test_concurrent_promotions_keep_the_log_consistent(reg: ModelRegistry, src: Path) -> None:
    versions = [register(reg, "sentiment", sentiment_file(src, s)).version for s in range(3)]
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(8):
                reg.promote("sentiment", versions[(i + offset) % 3])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    entries = history_lines(reg, "sentiment")
    assert entries and entries[0]["previous"] is None
    for before, after in itertools.pairwise(entries):
        assert after["previous"] == before["version"] != after["version"]
    assert (reg.root / "sentiment" / "PRODUCTION").read_text().strip() == entries[-1]["version"]


# --- code version --------------------------------------------------------------------------


def test_code_version(monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = Path(registry_module.__file__).resolve().parents[2]
    found = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if (checkout / ".git").exists() and found.returncode == 0:
        assert code_version() == f"{__version__}+g{found.stdout.strip()}"
    else:
        assert code_version() == __version__

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise subprocess.TimeoutExpired("git", 2.0)

    monkeypatch.setattr(registry_module.subprocess, "run", broken)
    assert code_version() == __version__
