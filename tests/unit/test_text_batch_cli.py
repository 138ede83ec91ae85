"""`memberstream score` and `memberstream summarize` on small files, with the real models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from memberstream.cli.main import cli
from memberstream.domain.language import is_cjk
from memberstream.errors import EX_DATAERR
from memberstream.ml.settings import DEFAULT_MODEL_DIR


@pytest.fixture(autouse=True)
def _models_present() -> None:
    if not (DEFAULT_MODEL_DIR / "sentiment_head.npz").is_file():
        pytest.fail(f"{DEFAULT_MODEL_DIR} has no sentiment head: run `make models` first")


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def _run(*args: str) -> tuple[int, list[dict], str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, lines, result.stderr


def test_score_gives_language_sentiment_and_categories_per_line(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "in.jsonl",
        [
            {"id": 1, "text": "质量太差了，用了两天就坏了，退货！"},
            {"id": "b", "text": "Absolutely love these running shoes, so comfortable."},
            {"id": 3, "text": "Terrible. It broke after one day and support never answered."},
            {"id": 4, "text": "物流很快，音质很好，非常满意"},
        ],
    )
    out = tmp_path / "out.jsonl"
    code, _, err = _run("score", "--input", str(src), "--output", str(out), "--top", "2")
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, "b", 3, 4]
    assert [r["language"] for r in rows] == ["zh", "en", "en", "zh"]
    for r in rows:
        assert set(r["sentiment"]) == {"negative", "neutral", "positive"}
        assert sum(r["sentiment"].values()) == pytest.approx(1.0, abs=1e-5)
        assert len(r["categories"]) == 2
        assert r["categories"][0]["probability"] >= r["categories"][1]["probability"]
        assert r["model_version"].startswith("use-multilingual-v3@")
        assert "sentiment@" in r["model_version"]
    verdict = [max(r["sentiment"], key=r["sentiment"].get) for r in rows]
    assert verdict == ["negative", "positive", "negative", "positive"]
    assert rows[1]["categories"][0]["id"] == "shoes"


def test_a_bad_line_is_an_error_with_its_line_number_and_no_output(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 1, "text": "fine"}\n\n{"id": 2}\n')
    out = tmp_path / "out.jsonl"
    code, _, err = _run("score", "--input", str(src), "--output", str(out))
    assert code == EX_DATAERR
    assert "line 3" in err and "text" in err
    assert not out.exists()
    src.write_text('{"id": 1, "text": "fine"}\nnot json\n')
    code, _, err = _run("score", "--input", str(src))
    assert code == EX_DATAERR and "line 2: not JSON" in err


REVIEWS_ZH = [
    "音质很好，低音很足。电池很耐用，充一次能用一整天。",
    "做工精致，佩戴舒适。音质不错，性价比高。",
    "物流很快，第二天就到了。音质很好，推荐购买。",
    "用了一周左边耳机就没声音了，质量太差。",
    "电池很耐用，音质清晰，连接也很稳定。",
]
REVIEWS_EN = [
    "The kettle boils water really fast. It looks great on the counter.",
    "Boils fast and the handle stays cool. Great value for the price.",
    "The lid broke after two weeks. Very disappointed with the quality.",
    "Looks great and boils quickly. The auto shut-off works well.",
]


def test_summarize_writes_one_summary_per_product_in_its_language(tmp_path: Path) -> None:
    rows = [
        {
            "product_id": "zh-earbuds",
            "review_id": f"z{i}",
            "text": t,
            "rating": 1 if "差" in t else 5,
        }
        for i, t in enumerate(REVIEWS_ZH)
    ] + [
        # No ratings: inferred from the text's sentiment.
        {"product_id": "en-kettle", "review_id": f"e{i}", "text": t}
        for i, t in enumerate(REVIEWS_EN)
    ]
    src = _write(tmp_path / "reviews.jsonl", rows)
    code, out, err = _run("summarize", "--input", str(src))
    assert code == 0, err
    assert [r["product_id"] for r in out] == ["zh-earbuds", "en-kettle"]
    zh, en = out
    assert zh["language"] == "zh" and is_cjk(zh["summary"])
    assert en["language"] == "en" and not is_cjk(en["summary"])
    for record, texts, prefix in ((zh, REVIEWS_ZH, "z"), (en, REVIEWS_EN, "e")):
        assert record["summary"]
        assert record["review_ids"] == sorted(f"{prefix}{i}" for i in range(len(texts)))
        for point in record["pros"] + record["cons"]:
            # Verbatim and cited: each point is a sentence of every review it cites
            # or of a near-duplicate; at least of one of them.
            cited = [texts[int(rid[1:])] for rid in point["review_ids"]]
            assert any(point["text"] in t for t in cited), point
            assert point["aspect"]
        assert record["model_version"]
    assert any("质量太差" in c["text"] or "没声音" in c["text"] for c in zh["cons"])
    assert any("lid broke" in c["text"] for c in en["cons"])


def test_summarize_bad_rating_is_a_line_error(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "r.jsonl",
        [{"product_id": "p", "review_id": "r1", "text": "ok", "rating": 9}],
    )
    code, _, err = _run("summarize", "--input", str(src))
    assert code == EX_DATAERR and "line 1: rating" in err


def test_summarize_to_a_file_writes_what_it_would_print(tmp_path: Path) -> None:
    rows = [
        {"product_id": "en-kettle", "review_id": f"e{i}", "text": t, "rating": 4}
        for i, t in enumerate(REVIEWS_EN)
    ]
    src = _write(tmp_path / "reviews.jsonl", rows)
    code, printed, err = _run("summarize", "--input", str(src))
    assert code == 0, err
    out = tmp_path / "summaries.jsonl"
    code, nothing, err = _run("summarize", "--input", str(src), "--output", str(out))
    assert code == 0, err
    assert nothing == []
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert written == printed and len(written) == 1
    assert written[0]["product_id"] == "en-kettle" and written[0]["summary"]
