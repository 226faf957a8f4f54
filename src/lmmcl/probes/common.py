"""Shared helpers of the probes: samples, prompts, decoder layers."""
from __future__ import annotations

import io
import os
from pathlib import Path

from ..layout import MANIFEST


def parse_labelled(items: list[str]) -> dict[str, str]:
    """``["label=path", "path2"]`` -> ``{"label": "path", "<parent folder of path2>": "path2"}``."""
    out: dict[str, str] = {}
    for item in items:
        label, sep, path = item.partition("=")
        if not sep:
            path = label
            p = Path(path)
            label = f"{p.parent.parent.name}/{p.parent.name}" if p.name == MANIFEST else p.name
        if label in out:
            raise ValueError(f"checkpoint label {label!r} given twice")
        out[label] = path
    return out


def load_samples(parquet: str | os.PathLike, n: int) -> list[dict]:
    """The first ``n`` rows (not shuffled, as the reference) as dicts with a PIL ``image``."""
    import pyarrow.parquet as pq
    from PIL import Image

    table = pq.read_table(parquet)
    for col in ("image", "question"):
        if col not in table.column_names:
            raise ValueError(f"{parquet}: column {col!r} missing (data contract: id, image, question, answer, task)")
    rows = table.slice(0, n).to_pylist()
    if not rows:
        raise ValueError(f"{parquet}: no rows")
    for r in rows:
        img = r["image"]
        if isinstance(img, dict):
            img = img.get("bytes")
        r["image"] = Image.open(io.BytesIO(img)).convert("RGB") if isinstance(img, (bytes, bytearray)) else img
    return rows


def prompt_inputs(processor, question: str, image, device="cpu"):
    """Processor inputs of the generation prompt (chat template of the checkpoint)."""
    from ..train.collate import user_message

    prompt = processor.apply_chat_template(user_message(question), add_generation_prompt=True)
    return processor(text=[prompt], images=[image], return_tensors="pt").to(device)


def decoder_layers(model):
    """The decoder layers (ModuleList) of the language model of a multimodal model."""
    for attr in ("model.language_model.layers", "language_model.model.layers", "model.layers"):
        obj = model
        try:
            for part in attr.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return obj
    raise ValueError(f"cannot find the decoder layers of {type(model).__name__}")

