"""The model registry: trained head versions on disk, and which one is in production.

The learning loop trains new versions of the three heads the worker scores with
(the sentiment head, the interest category head, the learned anomaly scorer).
Each is one artifact file; the registry keeps every registered version and
records which one runs.

Layout on disk (``root`` is the registry's directory)::

    <root>/
      sentiment/
        .lock                      # fcntl.flock'd by register, promote, rollback
        PRODUCTION                 # one line: the version in production, "sentiment@3f2a9c1e0b7d"
        history.jsonl              # append-only promotion log, one JSON object per line
        versions/
          3f2a9c1e0b7d/            # first 12 hex digits of the version's digest
            sentiment_head.npz     # the artifact, byte for byte as registered
            manifest.json          # task, version, digest, parent, encoder_version, ...
          9b01c4d2e5f6/
            ...
      interest/
        ...                        # interest_head.npz
      anomaly/
        ...                        # anomaly_scorer.npz

Content-addressed: a version's name is ``<task>@<sha12>``, the first 12 hex digits of
the artifact's sha256 when the version is one file (as every head is; the worker's
outputs name a sentiment head by the same hash), else of the sha256 of the lines
``"<sha256 of the file>  <name>\\n"`` of its files in name order (what
``LC_ALL=C sha256sum * | sha256sum`` prints in the version's directory, manifest.json
aside). So the same trained bytes are one version however often they are registered
(registering them again returns the existing version,
untouched), a version directory is never rewritten, and :meth:`ModelRegistry.verify`
can tell from the manifest alone whether any byte changed. The manifest names the
version's ``parent`` (the version it was trained from or meant to replace), so
``models show`` can print the lineage; and it records the encoder, the data window,
the sample counts, the metrics and the code version that produced it.

What runs is decided by two files per task: ``PRODUCTION`` (rewritten atomically:
temporary file, fsync, rename) and ``history.jsonl`` (appended, flushed and fsynced
before ``PRODUCTION`` changes, so it is a write-ahead log: a crash between the two
is finished by the next promote or rollback). Together they are the source of
truth; never edit them by hand. Announcing a change on Kafka is the caller's job.

Rollback: the history is a stack. ``promote`` pushes a version; ``rollback`` pops
the one in production and restores the one beneath it. So after promoting A, B, C,
two rollbacks give B then A, and a third fails (nothing came before A); rollback
is not a toggle. Each history entry records ``previous``, the version a rollback
from it returns to (for a promote, the version it replaced), and ``replaced``, the
version that was in production before it.

Reading (:meth:`~ModelRegistry.versions`, :meth:`~ModelRegistry.production`,
:meth:`~ModelRegistry.history`) takes no lock. A torn last line of the history (a
crash mid-append) is skipped with a warning.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from memberstream import __version__
from memberstream.domain.anomaly.order_features import BEHAVIOUR_FEATURES, OrderVector
from memberstream.domain.taxonomy import Taxonomy
from memberstream.errors import ModelError
from memberstream.ml.category_heads import HEAD_FILE, load_head
from memberstream.ml.encoder import sha256_file
from memberstream.ml.learned_scorer import SCORER_FILE, LearnedScorer
from memberstream.ml.sentiment import WEIGHTS_FILE, load_sentiment_head

log = logging.getLogger(__name__)

TASKS: tuple[str, ...] = ("sentiment", "interest", "anomaly")
ARTIFACT_FILES: dict[str, str] = {
    "sentiment": WEIGHTS_FILE,
    "interest": HEAD_FILE,
    "anomaly": SCORER_FILE,
}
MANIFEST_FILE = "manifest.json"
PRODUCTION_FILE = "PRODUCTION"
HISTORY_FILE = "history.jsonl"
LOCK_FILE = ".lock"
VERSIONS_DIR = "versions"
SHA_LEN = 12
_TMP_PREFIX = ".tmp-"
_HEX = frozenset("0123456789abcdef")
_CHUNK = 1 << 20
_RESERVED = frozenset(
    {
        "task",
        "version",
        "digest",
        "parent",
        "encoder_version",
        "data_window",
        "samples",
        "metrics",
        "code_version",
        "created_at",
        "files",
    }
)
_GIT_TIMEOUT_S = 2.0


class RegistryError(ModelError):
    """A registry operation that cannot be done: unknown task or version, a changed file,
    a refused promotion. Exit code 66 (a model the command needs is missing or unusable)."""

    hint = (
        "list the task's versions and its history in the model registry; a refused "
        "promote or rollback leaves production as it was"
    )


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: its directory and parsed manifest."""

    task: str
    version: str
    path: Path
    manifest: dict[str, Any] = field(compare=False, repr=False)

    @property
    def artifact(self) -> Path:
        """The artifact file the worker loads (the directory is a model directory too)."""
        return self.path / ARTIFACT_FILES[self.task]

    @property
    def parent(self) -> str | None:
        return self.manifest.get("parent")

    @property
    def created_at(self) -> str:
        return str(self.manifest.get("created_at", ""))


# --- hashing and durable writes ------------------------------------------------------------


def content_digest(file_hashes: Mapping[str, str]) -> str:
    """The version digest: the artifact's own sha256 when the version is one file (so a
    registry version and the label the worker's outputs carry share their hash), else
    sha256 over ``"<sha256>  <name>\\n"`` lines in name order."""
    if len(file_hashes) == 1:
        return next(iter(file_hashes.values()))
    lines = "".join(f"{file_hashes[name]}  {name}\n" for name in sorted(file_hashes))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def _copy_hashed(src: Path, dst: Path) -> str:
    """Copy ``src`` to a new file ``dst``, fsync it, and return the sha256 of what was written."""
    h = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        while chunk := fin.read(_CHUNK):
            h.update(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return h.hexdigest()


def _write_new(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}{_TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}")
    try:
        _write_new(tmp, data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _utc_now() -> str:
    return _iso(datetime.now(UTC))


def _iso(moment: datetime) -> str:
    """Fixed-width UTC ISO-8601, so the strings sort as the times do."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _normalize_time(value: str | None) -> str:
    if value is None:
        return _utc_now()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RegistryError(f"created_at {value!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise RegistryError(f"created_at {value!r} has no time zone; give UTC, e.g. ...Z")
    return _iso(moment)


def _json_bytes(obj: Any, what: str) -> bytes:
    try:
        text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{what} is not plain JSON (no NaN or infinity): {exc}") from None
    return (text + "\n").encode("utf-8")


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise RegistryError(f"unknown task {task!r}; the registry holds {', '.join(TASKS)}")


def _check_file_names(task: str, files: Mapping[str, Path]) -> None:
    artifact = ARTIFACT_FILES[task]
    if artifact not in files:
        raise RegistryError(f"a {task} version needs its artifact {artifact}; got {sorted(files)}")
    for name, src in files.items():
        if (
            not name
            or name != Path(name).name
            or name.startswith(".")
            or name == MANIFEST_FILE
            or "\n" in name
        ):
            raise RegistryError(f"{name!r} is not a usable file name in a version directory")
        if not Path(src).is_file():
            raise RegistryError(f"{name}: {src} is not a file")


# --- the registry ------------------------------------------------------------------------------


class ModelRegistry:
    """Versions of the heads under ``root``; see the module docstring for the layout."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- paths

    def _task_dir(self, task: str) -> Path:
        _check_task(task)
        return self.root / task

    def _versions_dir(self, task: str) -> Path:
        return self._task_dir(task) / VERSIONS_DIR

    @contextmanager
    def _locked(self, task: str) -> Iterator[None]:
        """Exclusive across processes: one writer per task at a time."""
        directory = self._task_dir(task)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / LOCK_FILE, "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    # -- versions

    def register(
        self,
        task: str,
        files: Mapping[str, Path],
        *,
        parent: str | None,
        encoder_version: str,
        data_window: Mapping[str, str | None],
        samples: Mapping[str, int],
        metrics: Mapping[str, Any],
        code_version: str,
        created_at: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Store ``files`` (name in the version directory -> source path) as a version.

        The same file names and bytes give the same version: registering them again
        returns the existing one, manifest and all, whatever the other arguments say.
        """
        _check_task(task)
        _check_file_names(task, files)
        clash = sorted(_RESERVED & set(extra or {}))
        if clash:
            raise RegistryError(f"extra manifest fields {clash} would overwrite the registry's own")
        fields: dict[str, Any] = {
            **dict(extra or {}),
            "task": task,
            "encoder_version": encoder_version,
            "data_window": dict(data_window),
            "samples": {k: int(v) for k, v in samples.items()},
            "metrics": dict(metrics),
            "code_version": code_version,
            "created_at": _normalize_time(created_at),
        }
        _json_bytes(fields, f"the {task} manifest")  # refuse before copying anything
        with self._locked(task):
            fields["parent"] = self._resolve_parent(task, parent)
            return self._store(task, files, fields)

    def _resolve_parent(self, task: str, parent: str | None) -> str | None:
        if parent is None:
            return None
        try:
            return self.get(task, parent).version
        except RegistryError:
            log.warning("parent %s is not a %s version in %s; stored as given", parent, task, self)
            return parent

    def _store(self, task: str, files: Mapping[str, Path], fields: dict[str, Any]) -> ModelVersion:
        versions = self._versions_dir(task)
        versions.mkdir(parents=True, exist_ok=True)
        _remove_stale_tmp(versions)
        tmp = versions / f"{_TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        os.mkdir(tmp)
        try:
            hashes = {name: _copy_hashed(Path(files[name]), tmp / name) for name in sorted(files)}
            digest = content_digest(hashes)
            final = versions / digest[:SHA_LEN]
            if final.exists():
                return self._existing(task, final, digest)
            version = f"{task}@{digest[:SHA_LEN]}"
            manifest = {**fields, "version": version, "digest": digest, "files": hashes}
            _write_new(tmp / MANIFEST_FILE, _json_bytes(manifest, f"the {task} manifest"))
            _fsync_dir(tmp)
            os.rename(tmp, final)
            _fsync_dir(versions)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        log.info("registered %s (%s)", version, ", ".join(sorted(hashes)))
        return ModelVersion(task, version, final, manifest)

    def _existing(self, task: str, directory: Path, digest: str) -> ModelVersion:
        mv = _load_version(task, directory)
        if mv.manifest.get("digest") != digest:
            raise RegistryError(
                f"{mv.version} already exists with digest {mv.manifest.get('digest')}, "
                f"not {digest}: a 12-digit prefix collision or a damaged manifest"
            )
        self.verify(mv)
        log.info("%s is already registered; returning it unchanged", mv.version)
        return mv

    def versions(self, task: str | None = None) -> list[ModelVersion]:
        """Registered versions, oldest first (by created_at, then version). Unreadable
        version directories are skipped with a warning."""
        tasks = TASKS if task is None else (task,)
        out: list[ModelVersion] = []
        for t in tasks:
            for directory in self._version_dirs(t):
                try:
                    out.append(_load_version(t, directory))
                except RegistryError as exc:
                    log.warning("skipping %s: %s", directory, exc)
        return sorted(out, key=lambda mv: (mv.created_at, mv.version))

    def _version_dirs(self, task: str, prefix: str = "") -> list[Path]:
        versions = self._versions_dir(task)
        if not versions.is_dir():
            return []
        return sorted(
            d
            for d in versions.iterdir()
            if d.is_dir() and not d.name.startswith(".") and d.name.startswith(prefix)
        )

    def get(self, task: str, version: str) -> ModelVersion:
        """A version by ``task@sha12``, by sha12, or by a unique prefix of its digest."""
        sha = _sha_ref(task, version)
        matches = [
            mv
            for mv in (_load_version(task, d) for d in self._version_dirs(task, sha[:SHA_LEN]))
            if str(mv.manifest.get("digest", "")).startswith(sha)
        ]
        if not matches:
            raise RegistryError(f"no {task} version {version!r} in {self.root}")
        if len(matches) > 1:
            names = ", ".join(mv.version for mv in matches)
            raise RegistryError(f"{task} version {version!r} is ambiguous: {names}")
        return matches[0]

    def verify(self, mv: ModelVersion) -> None:
        """Re-hash every file against the manifest; RegistryError on any difference."""
        recorded = mv.manifest.get("files")
        if not isinstance(recorded, dict) or not recorded:
            raise RegistryError(f"{mv.version}: the manifest lists no files")
        for name, expected in sorted(recorded.items()):
            path = mv.path / name
            if not path.is_file():
                raise RegistryError(f"{mv.version}: {name} is missing from {mv.path}")
            actual = sha256_file(path)
            if actual != expected:
                raise RegistryError(
                    f"{mv.version}: {name} has sha256 {actual}, the manifest records {expected}"
                )
        digest = content_digest(recorded)
        if digest != mv.manifest.get("digest") or digest[:SHA_LEN] != mv.path.name:
            raise RegistryError(f"{mv.version}: the manifest's file list does not hash to it")
        extra = sorted(
            p.name for p in mv.path.iterdir() if p.name not in recorded and p.name != MANIFEST_FILE
        )
        if extra:
            raise RegistryError(f"{mv.version}: files not in the manifest: {extra}")

    # -- production

    def _production_raw(self, task: str) -> str | None:
        try:
            text = (self._task_dir(task) / PRODUCTION_FILE).read_text("utf-8").strip()
        except FileNotFoundError:
            return None
        return text or None

    def production(self, task: str) -> ModelVersion | None:
        """The version in production, or None before the first promote."""
        raw = self._production_raw(task)
        if raw is None:
            return None
        try:
            return self.get(task, raw)
        except RegistryError as exc:
            raise RegistryError(
                f"{task} PRODUCTION names {raw}, which cannot be read: {exc}"
            ) from None

    def history(self, task: str) -> list[dict[str, Any]]:
        """The promotion log, oldest first; unreadable lines are skipped with a warning."""
        path = self._task_dir(task) / HISTORY_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return []
        out: list[dict[str, Any]] = []
        for number, line in enumerate(raw.split(b"\n"), start=1):
            if not line.strip():
                continue
            entry = _parse_entry(line)
            if entry is None:
                log.warning(
                    "%s line %d is not a history entry (torn write?); skipped", path, number
                )
            else:
                out.append(entry)
        return out

    def promote(
        self,
        task: str,
        version: str,
        *,
        check: Callable[[ModelVersion], None] | None = None,
        reason: str = "",
        actor: str = "",
    ) -> dict[str, Any]:
        """Make ``version`` the production version after :meth:`verify` and ``check``.

        ``check`` is the caller's probe (e.g. :func:`load_check`); any exception from it
        refuses the promotion and nothing changes. Promoting the production version
        again is a no-op returning an entry with action ``unchanged`` (verified, not
        checked, not logged).
        """
        with self._locked(task):
            self._finish_interrupted(task)
            mv = self.get(task, version)
            self.verify(mv)
            current = self._production_raw(task)
            if current == mv.version:
                return _entry("unchanged", task, mv.version, current, current, reason, actor)
            _run_check(check, mv)
            entry = _entry("promote", task, mv.version, current, current, reason, actor)
            self._commit(task, entry)
        log.info("%s: promoted %s (was %s)", task, mv.version, current)
        return entry

    def rollback(
        self,
        task: str,
        *,
        check: Callable[[ModelVersion], None] | None = None,
        reason: str = "",
        actor: str = "",
    ) -> dict[str, Any]:
        """Restore the version beneath the production one in the promotion stack (the
        ``previous`` of the entry that made it production). Verified and checked as
        :meth:`promote`; RegistryError when there is nothing to go back to."""
        with self._locked(task):
            self._finish_interrupted(task)
            current = self._production_raw(task)
            if current is None:
                raise RegistryError(f"no {task} version is in production; nothing to roll back")
            stack = _replay(self.history(task))
            if not stack or stack[-1] != current:
                raise RegistryError(
                    f"the {task} history does not end at the production version {current}, "
                    "so what came before it is unknown",
                    hint="promote the version you want explicitly",
                )
            if len(stack) < 2:
                raise RegistryError(f"{current} has no earlier {task} version to roll back to")
            target = self.get(task, stack[-2])
            self.verify(target)
            _run_check(check, target)
            below = stack[-3] if len(stack) >= 3 else None
            entry = _entry("rollback", task, target.version, below, current, reason, actor)
            self._commit(task, entry)
        log.info("%s: rolled back %s to %s", task, current, target.version)
        return entry

    def _commit(self, task: str, entry: dict[str, Any]) -> None:
        """Log first (write-ahead), then switch PRODUCTION."""
        self._append(task, entry)
        self._write_production(task, entry["version"])

    def _append(self, task: str, entry: dict[str, Any]) -> None:
        path = self._task_dir(task) / HISTORY_FILE
        created = not path.exists()
        line = json.dumps(entry, ensure_ascii=False, allow_nan=False) + "\n"
        with open(path, "a+b") as f:
            if f.seek(0, os.SEEK_END) > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # a torn last line: keep it apart from this one
                    f.write(b"\n")
            f.write(line.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        if created:
            _fsync_dir(path.parent)

    def _write_production(self, task: str, version: str) -> None:
        _replace_atomically(self._task_dir(task) / PRODUCTION_FILE, f"{version}\n".encode())

    def _finish_interrupted(self, task: str) -> None:
        """A crash after the history append but before the PRODUCTION rename: finish it."""
        entries = self.history(task)
        if not entries:
            return
        logged, current = entries[-1]["version"], self._production_raw(task)
        if logged == current:
            return
        try:
            self.get(task, logged)
        except RegistryError as exc:
            log.warning("%s: history ends at %s, which cannot be read (%s)", task, logged, exc)
            return
        log.warning(
            "%s: history ends at %s but PRODUCTION says %s; finishing the interrupted %s",
            task,
            logged,
            current,
            entries[-1]["action"],
        )
        self._write_production(task, logged)

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.root)!r})"


def _load_version(task: str, directory: Path) -> ModelVersion:
    path = directory / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{path}: cannot read the manifest: {exc}") from None
    expected = f"{task}@{directory.name}"
    if not isinstance(manifest, dict) or manifest.get("version") != expected:
        raise RegistryError(f"{path}: the manifest is not that of {expected}")
    if manifest.get("task") != task:
        raise RegistryError(f"{path}: the manifest's task is {manifest.get('task')!r}")
    return ModelVersion(task, expected, directory, manifest)


def _sha_ref(task: str, version: str) -> str:
    """The hex digest prefix a version reference names (``task@abc...`` or ``abc...``)."""
    _check_task(task)
    ref = version.strip()
    if "@" in ref:
        named, _, ref = ref.partition("@")
        if named != task:
            raise RegistryError(f"{version!r} is not a {task} version")
    ref = ref.lower()
    if not ref or len(ref) > 64 or not set(ref) <= _HEX:
        raise RegistryError(f"{version!r} is not a {task} version (task@<hex digits>)")
    return ref


def _remove_stale_tmp(versions: Path) -> None:
    """Temporary directories of registrations that crashed (the lock is held, so no
    registration is under way)."""
    for d in versions.iterdir():
        if d.name.startswith(_TMP_PREFIX):
            log.warning("removing %s, left by an interrupted registration", d)
            shutil.rmtree(d, ignore_errors=True)


def _parse_entry(line: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    ok = (
        isinstance(entry, dict)
        and isinstance(entry.get("action"), str)
        and isinstance(entry.get("version"), str)
    )
    return entry if ok else None


def _entry(
    action: str,
    task: str,
    version: str,
    previous: str | None,
    replaced: str | None,
    reason: str,
    actor: str,
) -> dict[str, Any]:
    return {
        "action": action,
        "task": task,
        "version": version,
        "previous": previous,
        "replaced": replaced,
        "at": _utc_now(),
        "reason": reason,
        "actor": actor,
    }


def _replay(entries: list[dict[str, Any]]) -> list[str]:
    """The promotion stack the history describes: promote pushes, rollback pops.

    Where the log disagrees with itself (a lost line), each entry's own record wins.
    """
    stack: list[str] = []
    for e in entries:
        version, previous = e["version"], e.get("previous")
        if e["action"] == "promote":
            if previous and (not stack or stack[-1] != previous):
                stack.append(previous)
            stack.append(version)
        elif e["action"] == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != version:
                stack = [previous, version] if previous else [version]
    return stack


def _run_check(check: Callable[[ModelVersion], None] | None, mv: ModelVersion) -> None:
    if check is None:
        return
    try:
        check(mv)
    except Exception as exc:
        raise RegistryError(f"refused {mv.version}: {exc}") from exc


# --- the load check ---------------------------------------------------------------------------

_PROBE_TEXTS = ["Great value, works well!", "质量很差，用了三天就坏了。"]
_PROBE_ROWS = 2


def load_check(
    task: str, dim: int | None = None, *, taxonomy: Taxonomy | None = None
) -> Callable[[ModelVersion], None]:
    """A ``check`` for :meth:`ModelRegistry.promote`: load the artifact with the worker's
    own loader and score a tiny probe; refuse a head for another encoder dimension.

    ``dim`` is the worker encoder's dimension; ``taxonomy`` (interest only) checks the
    head's categories against the worker's taxonomy. An anomaly scorer that takes no
    embedding (embedding_dim 0) fits any encoder.
    """
    _check_task(task)
    probe = _PROBES[task]

    def check(mv: ModelVersion) -> None:
        if mv.task != task:
            raise RegistryError(f"{mv.version} is not a {task} version")
        try:
            probe(mv.path, dim, taxonomy)
        except RegistryError:
            raise
        except Exception as exc:
            raise RegistryError(
                f"{mv.version}: {ARTIFACT_FILES[task]} does not load or score: {exc}"
            ) from exc

    return check


def _unit_rows(n: int, dim: int) -> np.ndarray:
    x = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _check_dim(what: str, got: int, dim: int | None) -> None:
    if dim is not None and got != dim:
        raise RegistryError(
            f"{what} takes {got}-d embeddings but the worker's encoder gives {dim}-d: "
            "it was trained on another encoder"
        )


def _check_probs(what: str, probs: np.ndarray, rows: int, cols: int | None = None) -> None:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != rows or (cols is not None and p.shape[1] != cols):
        want = f"({rows}, {cols if cols is not None else 'k'})"
        raise RegistryError(f"{what} gave probabilities of shape {p.shape}, expected {want}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
        raise RegistryError(f"{what} gave probabilities that are not finite values in [0, 1]")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise RegistryError(f"{what} gave rows that do not sum to 1: {p.sum(axis=1).tolist()}")


def _probe_sentiment(directory: Path, dim: int | None, _taxonomy: Taxonomy | None) -> None:
    head = load_sentiment_head(directory)
    if head is None:
        raise RegistryError(f"{directory} has no {WEIGHTS_FILE}")
    _check_dim("the sentiment head", head.dim, dim)
    probs = head.predict_proba(_unit_rows(_PROBE_ROWS, head.dim), list(_PROBE_TEXTS))
    _check_probs("the sentiment head", probs, _PROBE_ROWS, 3)


def _probe_interest(directory: Path, dim: int | None, taxonomy: Taxonomy | None) -> None:
    head = load_head(directory, taxonomy)
    if head is None:
        raise RegistryError(f"{directory} has no {HEAD_FILE}")
    _check_dim("the interest head", int(head.weight.shape[1]), dim)
    probs = head.predict_proba(_unit_rows(_PROBE_ROWS, int(head.weight.shape[1])))
    _check_probs("the interest head", probs, _PROBE_ROWS, int(head.weight.shape[0]))


def _probe_anomaly(directory: Path, dim: int | None, _taxonomy: Taxonomy | None) -> None:
    scorer = LearnedScorer.load(directory / SCORER_FILE)
    width = len(BEHAVIOUR_FEATURES) + scorer.embedding_dim
    if scorer.mean.shape != (width,) or scorer.scale.shape != (width,):
        raise RegistryError(
            f"the anomaly scorer's mean/scale have shapes {scorer.mean.shape}/"
            f"{scorer.scale.shape}, expected ({width},)"
        )
    if scorer.embedding_dim:
        _check_dim("the anomaly scorer", scorer.embedding_dim, dim)
    rng = np.random.default_rng(0)
    embeddings = _unit_rows(_PROBE_ROWS, scorer.embedding_dim) if scorer.embedding_dim else None
    vectors = [
        OrderVector(
            rng.normal(size=len(BEHAVIOUR_FEATURES)),
            None if embeddings is None else embeddings[i],
        )
        for i in range(_PROBE_ROWS)
    ]
    scores = scorer.score(vectors)
    if len(scores) != _PROBE_ROWS:
        raise RegistryError(f"the anomaly scorer gave {len(scores)} scores for {_PROBE_ROWS}")
    for s in scores:
        values = [s.probability, *s.contributions.values()]
        if not all(math.isfinite(v) for v in values) or not 0.0 <= s.probability <= 1.0:
            raise RegistryError("the anomaly scorer gave a score that is not finite in [0, 1]")


_PROBES: dict[str, Callable[[Path, int | None, Taxonomy | None], None]] = {
    "sentiment": _probe_sentiment,
    "interest": _probe_interest,
    "anomaly": _probe_anomaly,
}


# --- code version -----------------------------------------------------------------------------


def code_version() -> str:
    """``memberstream.__version__``, plus ``+g<short sha>`` when the package sits in a git
    checkout. Never fails: without git (or on any error) it is the version alone."""
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / ".git").exists():
        return __version__
    with suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
        sha = done.stdout.strip()
        if done.returncode == 0 and sha and set(sha) <= _HEX:
            return f"{__version__}+g{sha}"
    return __version__


__all__ = [
    "ARTIFACT_FILES",
    "TASKS",
    "ModelRegistry",
    "ModelVersion",
    "RegistryError",
    "code_version",
    "content_digest",
    "load_check",
]
