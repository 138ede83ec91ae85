"""Top frames of py-spy profiles, as a short markdown table.

``python -m bench.profile_summary DIR [--top N] [--out FILE] [--title T]``

Reads the collapsed-stack files (``py-spy record --format raw``) that
``bench.throughput --profile DIR`` leaves, one per worker run, and reports per
contender (the file name up to its round) the share of samples spent *in* each
function (self) and *under* it (inclusive), and the share per source area
(memberstream's own packages, Faust, aiokafka, RocksDB, ONNX Runtime, the
interpreter's asyncio, ...). Idle samples (the event loop waiting in
``select``/``epoll``) are counted apart so the shares are of busy time.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
IDLE = ("select (selectors.py", "poll (selectors.py", "_run_once (asyncio/base_events.py")
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
        if frames[0].startswith("process ") or frames[0].startswith("thread "):
            frames = frames[1:] or frames  # py-spy's --threads / --subprocesses prefix
        profile.total += count
        leaf = frames[-1]
        if any(leaf.strip().startswith(idle) for idle in IDLE):
            profile.idle += count
            continue
        profile.self_[short(leaf)] += count
        profile.areas[area(leaf)] += count
        for name in {short(f) for f in frames}:
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
            f"{p.total:,} samples, {p.busy:,} busy ({100 * p.busy / p.total:.0f}%; the rest "
            "the event loop waiting).",
            "",
            *table("area (self time)", p.areas, p.busy, len(AREAS) + 1),
            "",
            *table("function (self)", p.self_, p.busy, top),
            "",
            *table("function (inclusive)", p.inclusive, p.busy, top),
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
