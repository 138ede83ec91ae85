"""The anomaly evaluation on its small seeded slice of both families, against the floors
in bench/anomaly_floors.toml: a detector change that loses precision, recall or adds
false alerts on either family fails here (the full figures: ``make bench-anomalies``)."""

from __future__ import annotations

from pathlib import Path

from bench.anomalies import main

FLOORS = Path(__file__).parents[2] / "bench" / "anomaly_floors.toml"


def test_the_small_slice_meets_its_floors(capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(["--offline", "--family", "both", "--small", "--floors", str(FLOORS)])
    out = capsys.readouterr().out
    assert code == 0, [line for line in out.splitlines() if "floor" in line.lower()]
    assert "Floors (" in out and "all met" in out
