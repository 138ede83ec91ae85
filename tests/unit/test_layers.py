"""Dependencies point one way (DESIGN.md, "Layout"): the import-linter contracts in
pyproject.toml hold, and importing a domain policy (or a schema) loads no Faust, ONNX
Runtime or aiokafka, nor importing the processing core Faust or aiokafka."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import memberstream.core
import memberstream.domain
import memberstream.schemas

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("faust", "onnxruntime", "aiokafka")


def _modules(package: object) -> list[str]:
    found = [package.__name__]  # type: ignore[attr-defined]
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):  # type: ignore[attr-defined]
        found.append(info.name)
    return sorted(found)


def _loaded_after_import(*modules: str) -> list[str]:
    """The HEAVY packages a fresh interpreter has loaded after importing ``modules``."""
    code = (
        "import importlib, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return [m for m in done.stdout.strip().split(",") if m]


@pytest.mark.parametrize("module", _modules(memberstream.domain) + _modules(memberstream.schemas))
def test_a_domain_policy_loads_no_faust_onnxruntime_or_aiokafka(module: str) -> None:
    assert _loaded_after_import(module) == []


def test_the_processing_core_loads_no_faust_or_aiokafka() -> None:
    loaded = _loaded_after_import(*_modules(memberstream.core))
    assert [m for m in loaded if m in ("faust", "aiokafka")] == []


def test_import_contracts_hold() -> None:
    """``lint-imports`` (also run by ``make lint``) with the contracts in pyproject.toml."""
    pytest.importorskip("importlinter")
    code = (
        "import sys\n"
        "from importlinter.cli import lint_imports\n"
        "sys.exit(lint_imports(config_filenames=('pyproject.toml',), no_cache=True, "
        "no_logo=True))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
