"""Turn a CTranslate2 Whisper model (``model.bin``) into an openai-whisper checkpoint.

The embedded model ships only in CTranslate2 form; converting it lets the openai
backend run offline on exactly the same weights. The file format (version 6) is a
header (u32 version, u16-length-prefixed spec name, u32 revision, u32 variable
count), then per variable: u16-length-prefixed name, u8 rank, u32 dims, u8 dtype,
u32 byte count, data; then a u32 alias count and (alias, target) name pairs.

Layer names differ between the two: CTranslate2 stacks the self-attention
query/key/value into one ``linear_0`` (Whisper's key has no bias, so its third of
the bias is zero) and the cross-attention key/value into ``attention/linear_1``.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# CTranslate2's DataType ids, in its own order.
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_BFLOAT16 = 5


class ConversionError(ValueError):
    """The input is not a CTranslate2 Whisper model this converter understands."""


@dataclass(frozen=True)
class Ct2Model:
    spec: str
    revision: int
    variables: dict[str, np.ndarray]


def _read(fh, fmt: str, path: Path):
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise ConversionError(f"{path}: truncated CTranslate2 model file")
    return struct.unpack(fmt, data)


def _read_name(fh, path: Path) -> str:
    (length,) = _read(fh, "<H", path)
    raw = fh.read(length)
    if len(raw) != length:
        raise ConversionError(f"{path}: truncated CTranslate2 model file")
    return raw.rstrip(b"\0").decode("utf-8")


def read_ct2_model(path: str | Path) -> Ct2Model:
    """Every variable of ``model.bin`` (or of the model directory holding it), aliases resolved."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    if not path.is_file():
        raise ConversionError(f"{path}: CTranslate2 model file not found")
    variables: dict[str, np.ndarray] = {}
    with open(path, "rb") as fh:
        (version,) = _read(fh, "<I", path)
        if version != 6:
            raise ConversionError(f"{path}: CTranslate2 model format version {version}; only version 6 is supported")
        spec = _read_name(fh, path)
        (revision,) = _read(fh, "<I", path)
        (count,) = _read(fh, "<I", path)
        for _ in range(count):
            name = _read_name(fh, path)
            (rank,) = _read(fh, "<B", path)
            dims = _read(fh, f"<{rank}I", path) if rank else ()
            dtype_id, nbytes = _read(fh, "<BI", path)
            raw = fh.read(nbytes)
            if len(raw) != nbytes:
                raise ConversionError(f"{path}: truncated CTranslate2 model file (variable {name})")
            if dtype_id == _BFLOAT16:
                # bfloat16 is the top half of a float32.
                array = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
            elif dtype_id in _DTYPES:
                array = np.frombuffer(raw, dtype=_DTYPES[dtype_id])
            else:
                raise ConversionError(f"{path}: variable {name} has unknown dtype id {dtype_id}")
            variables[name] = array.reshape(dims)
        tail = fh.read(4)
        aliases = struct.unpack("<I", tail)[0] if len(tail) == 4 else 0  # older writers may omit the alias table
        for _ in range(aliases):
            alias, target = _read_name(fh, path), _read_name(fh, path)
            if target not in variables:
                raise ConversionError(f"{path}: alias {alias} points to missing variable {target}")
            variables[alias] = variables[target]
    if not spec.startswith("Whisper"):
        raise ConversionError(f"{path}: a {spec or 'unnamed'} model, not a Whisper model")
    return Ct2Model(spec=spec, revision=revision, variables=variables)


def _dequantize(variables: dict[str, np.ndarray], name: str) -> np.ndarray:
    """float32 weights; int8/int16 weights are divided by their stored scale."""
    value = variables[name]
    if value.dtype in (np.int8, np.int16):
        scale = variables.get(f"{name}_scale")
        if scale is None:
            raise ConversionError(f"quantized variable {name} has no {name}_scale")
        scale = np.asarray(scale, dtype=np.float32)
        shape = (-1,) + (1,) * (value.ndim - 1) if scale.ndim == 1 else ()
        return value.astype(np.float32) / scale.reshape(shape)
    return value.astype(np.float32)


def _count_layers(variables: dict, prefix: str) -> int:
    layers = {int(m.group(1)) for name in variables if (m := re.match(rf"{prefix}/layer_(\d+)/", name))}
    if layers != set(range(len(layers))) or not layers:
        raise ConversionError(f"{prefix}: layers are missing or not numbered 0..n-1")
    return len(layers)


def _scalar(variables: dict, name: str) -> int:
    if name not in variables:
        raise ConversionError(f"variable {name} is missing")
    return int(np.asarray(variables[name]).reshape(-1)[0])


@dataclass(frozen=True)
class Dims:
    """openai-whisper's ModelDimensions, kept here so conversion needs no torch import."""

    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int


def _dims(v: dict[str, np.ndarray]) -> Dims:
    conv1 = v["encoder/conv1/weight"]
    return Dims(
        n_mels=int(conv1.shape[1]),
        n_audio_ctx=int(v["encoder/position_encodings/encodings"].shape[0]),
        n_audio_state=int(conv1.shape[0]),
        n_audio_head=_scalar(v, "encoder/num_heads"),
        n_audio_layer=_count_layers(v, "encoder"),
        n_vocab=int(v["decoder/embeddings/weight"].shape[0]),
        n_text_ctx=int(v["decoder/position_encodings/encodings"].shape[0]),
        n_text_state=int(v["decoder/embeddings/weight"].shape[1]),
        n_text_head=_scalar(v, "decoder/num_heads"),
        n_text_layer=_count_layers(v, "decoder"),
    )


def ct2_to_openai_state(model: Ct2Model) -> tuple[Dims, dict[str, np.ndarray]]:
    """(dimensions, openai-whisper state dict as float32 numpy arrays)."""
    v = model.variables
    try:
        dims = _dims(v)
    except KeyError as exc:
        raise ConversionError(f"variable {exc.args[0]} is missing; not a Whisper model") from None
    out: dict[str, np.ndarray] = {}

    def take(src: str, dst: str) -> None:
        if src not in v:
            raise ConversionError(f"variable {src} is missing")
        out[dst] = _dequantize(v, src)

    def linear(src: str, dst: str) -> None:
        take(f"{src}/weight", f"{dst}.weight")
        take(f"{src}/bias", f"{dst}.bias")

    def norm(src: str, dst: str) -> None:
        take(f"{src}/gamma", f"{dst}.weight")
        take(f"{src}/beta", f"{dst}.bias")

    def split_rows(src: str, names: list[str], dst: str) -> None:
        """Stacked projections: rows in order of ``names``; the key gets no bias."""
        weight = _dequantize(v, f"{src}/weight")
        bias = _dequantize(v, f"{src}/bias")
        parts = len(names)
        if weight.shape[0] % parts:
            raise ConversionError(f"{src}/weight: {weight.shape[0]} rows cannot hold {parts} stacked projections")
        for name, w, b in zip(names, np.split(weight, parts), np.split(bias, parts)):
            out[f"{dst}.{name}.weight"] = w
            if name == "key":
                if np.abs(b).max(initial=0.0) > 1e-6:
                    raise ConversionError(f"{src}/bias: the key bias is not zero, which Whisper cannot represent")
            else:
                out[f"{dst}.{name}.bias"] = b

    def ffn(src: str, dst: str) -> None:
        linear(f"{src}/ffn/linear_0", f"{dst}.mlp.0")
        linear(f"{src}/ffn/linear_1", f"{dst}.mlp.2")
        norm(f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")

    def self_attention(src: str, dst: str) -> None:
        split_rows(f"{src}/self_attention/linear_0", ["query", "key", "value"], f"{dst}.attn")
        linear(f"{src}/self_attention/linear_1", f"{dst}.attn.out")
        norm(f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")

    take("encoder/position_encodings/encodings", "encoder.positional_embedding")
    linear("encoder/conv1", "encoder.conv1")
    linear("encoder/conv2", "encoder.conv2")
    for i in range(dims.n_audio_layer):
        self_attention(f"encoder/layer_{i}", f"encoder.blocks.{i}")
        ffn(f"encoder/layer_{i}", f"encoder.blocks.{i}")
    norm("encoder/layer_norm", "encoder.ln_post")

    take("decoder/position_encodings/encodings", "decoder.positional_embedding")
    take("decoder/embeddings/weight", "decoder.token_embedding.weight")
    for i in range(dims.n_text_layer):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        self_attention(src, dst)
        linear(f"{src}/attention/linear_0", f"{dst}.cross_attn.query")
        split_rows(f"{src}/attention/linear_1", ["key", "value"], f"{dst}.cross_attn")
        linear(f"{src}/attention/linear_2", f"{dst}.cross_attn.out")
        norm(f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln")
        ffn(src, dst)
    norm("decoder/layer_norm", "decoder.ln")
    return dims, out


def alignment_heads(model_dir: Path) -> list[list[int]] | None:
    """[layer, head] pairs from the model's config.json (used for word timestamps)."""
    config = model_dir / "config.json"
    if not config.is_file():
        return None
    try:
        heads = json.loads(config.read_text(encoding="utf-8")).get("alignment_heads")
    except json.JSONDecodeError as exc:
        raise ConversionError(f"{config}: not valid JSON ({exc})") from None
    return [[int(layer), int(head)] for layer, head in heads] if heads else None


def convert(model_dir: str | Path, out: str | Path, dtype: str = "float16") -> Path:
    """Write an openai-whisper checkpoint (``torch.load``-able, ``whisper.load_model``-able) to ``out``.

    float16 halves the file, like OpenAI's own checkpoints; the loader upcasts on CPU.
    """
    import torch

    model_dir = Path(model_dir)
    if model_dir.is_file():
        model_dir = model_dir.parent
    dims, state = ct2_to_openai_state(read_ct2_model(model_dir))
    torch_dtype = {"float16": torch.float16, "float32": torch.float32}[dtype]
    checkpoint = {
        "dims": asdict(dims),
        "model_state_dict": {k: torch.from_numpy(np.ascontiguousarray(a)).to(torch_dtype) for k, a in state.items()},
    }
    heads = alignment_heads(model_dir)
    if heads:
        checkpoint["alignment_heads"] = heads
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a crash never leaves a half checkpoint that a later run trusts.
    tmp = out.with_name(f".{out.name}.tmp")
    torch.save(checkpoint, tmp)
    tmp.replace(out)
    return out
