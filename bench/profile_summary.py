"""Top frames of py-spy profiles, as a short markdown table.

``python -m bench.profile_summary DIR [--top N] [--out FILE] [--title T]``

Reads the collapsed-stack files (``py-spy record --format raw``) that
``bench.throughput --profile DIR`` leaves, one per worker run, and reports per
contender (the file name up to its round) the share of the main thread's samples
spent *in* each function (self) and *under* it (inclusive), and the share per
source area (memberstream's own packages, Faust, aiokafka, RocksDB, ONNX Runtime,
the interpreter's asyncio, ...). The main thread runs the event loop, every agent
and the Kafka clients: it is the one that bounds a worker's rate. Samples of the
loop waiting in ``select`` are counted apart, so the shares are of busy time;
other threads (the model's) are counted in total only.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
IDLE = {"EpollSelector.select (selectors.py)", "Condition.wait (threading.py)"}
MAIN = "_run_module_as_main"
OWN = "memberstream/"  # inclusive shares are listed for the project's own functions
AREAS = (  # (label, substring of the file path), first match wins
    ("memberstream", "memberstream/"),
    ("faust", "faust/"),
    ("mode", "mode/"),
    ("aiokafka", "aiokafka/"),
    ("rocksdict", "rocksdict"),
    ("onnxruntime", "onnxruntime"),
    ("pydantic", "pydantic"),
    ("orjson", "orjson"),
    ("numpy", "numpy/"),
    ("asyncio", "asyncio/"),
)


@dataclass
class Profile:
    """Sample counts of one contender's runs (all rounds pooled)."""

    total: int = 0
    idle: int = 0
    other_threads: int = 0
    self_: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    areas: Counter[str] = field(default_factory=Counter)

    @property
    def busy(self) -> int:
        return self.total - self.idle


def short(frame: str) -> str:
    """``func (path/to/pkg/mod.py:12)`` -> ``func (pkg/mod.py)``."""
    m = FRAME.match(frame.strip())
    if m is None:
        return frame.strip()
    parts = m.group("file").split("/")
    return f"{m.group('func')} ({'/'.join(parts[-2:])})"


def area(frame: str) -> str:
    for label, needle in AREAS:
        if needle in frame:
            return label
    return "other"


def add_stacks(profile: Profile, lines: Iterable[str]) -> None:
    for line in lines:
        stack, _, count_s = line.rstrip("\n").rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [f for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        if not any(MAIN in f for f in frames):
            profile.other_threads += count
            continue
        profile.total += count
        leaf = frames[-1]
        if short(leaf) in IDLE:
            profile.idle += count
            continue
        profile.self_[short(leaf)] += count
        profile.areas[area(leaf)] += count
        for name in {short(f) for f in frames if OWN in f}:
            profile.inclusive[name] += count


def load(directory: Path) -> dict[str, Profile]:
    """Profiles per contender from ``<contender>-<round>.txt`` files."""
    profiles: dict[str, Profile] = defaultdict(Profile)
    for path in sorted(directory.glob("*.txt")):
        contender = path.stem.rsplit("-", 1)[0]
        with path.open(errors="replace") as f:
            add_stacks(profiles[contender], f)
    return dict(profiles)


def table(title: str, counts: Counter[str], busy: int, top: int) -> list[str]:
    rows = [f"| {title} | share of busy samples |", "|---|---:|"]
    for name, n in counts.most_common(top):
        rows.append(f"| `{name}` | {100 * n / busy:.1f}% |")
    return rows


def markdown(profiles: dict[str, Profile], top: int, title: str) -> str:
    out = [f"# {title}", ""]
    for contender, p in profiles.items():
        if p.busy == 0:
            continue
        out += [
            f"## {contender}",
            "",
            f"Main thread: {p.total:,} samples, {p.busy:,} busy ({100 * p.busy / p.total:.0f}%; "
            f"the rest the event loop waiting); other threads (the model's): "
            f"{p.other_threads:,} samples.",
            "",
            *table("area (self time)", p.areas, p.busy, len(AREAS) + 1),
            "",
            *table("function (self)", p.self_, p.busy, top),
            "",
            *table("memberstream function (inclusive)", p.inclusive, p.busy, top),
            "",
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile_summary",
        description="Top frames of the py-spy profiles that bench.throughput --profile wrote.",
    )
    parser.add_argument("directory", type=Path, help="directory of collapsed-stack files")
    parser.add_argument("--top", type=int, default=20, help="rows per table (%(default)s)")
    parser.add_argument("--out", type=Path, help="write the markdown here (default: stdout)")
    parser.add_argument("--title", default="Worker profile (py-spy)", help="heading")
    args = parser.parse_args(argv)
    profiles = load(args.directory)
    if not profiles:
        parser.error(f"no *.txt profiles in {args.directory}")
    text = markdown(profiles, args.top, args.title)
    if args.out is None:
        print(text)
    else:
        args.out.write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
