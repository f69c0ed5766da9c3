"""How each side of an evaluation was prepared, and whether the two sides were prepared alike.

Each side is described by its source, source resolution, channels, how its values were stored and
quantised, the resize in front of the extractor, and flips. Sides that differ in resolution, channels or
quantisation (uint8 against floats) score a gap that is not the generator's: the cause of most
published-vs-measured FID differences. `gan eval` warns of them in one line.
"""
from __future__ import annotations

from typing import Any

import torch

from gan_cli.data.base import GanData
from gan_cli.metrics.resize import Preprocess

COMPARED = ("resolution", "channels", "values")


def stored_uint8(data: GanData) -> bool:
    """Whether the dataset holds uint8 images (prepared datasets, folders, uint8 .npz) rather than floats."""
    if data.in_memory:
        return data.dataset.tensors[0].dtype == torch.uint8
    return len(data) > 0 and data.dataset[0][0].dtype == torch.uint8


def describe(source: str, shape: tuple[int, ...], uint8: bool, prep: Preprocess | None, resize: str,
             xflip: str) -> dict[str, Any]:
    """One side: shape (C, H, W) as stored, uint8 or float, and what the evaluation did to it."""
    if prep is None:
        return {"source": source, "values": "raw (2D points)"}
    values = "uint8 as stored" if uint8 else ("uint8, quantised as a PNG" if prep.quantize else "float")
    return {"source": source, "resolution": list(shape[-2:]), "channels": int(shape[0]), "values": values,
            "resize": resize, "xflip": xflip}


def differences(real: dict[str, Any], fake: dict[str, Any]) -> list[str]:
    """What differs between the two sides' preparation, in words ([] when alike)."""
    out = []
    for key in COMPARED:
        a, b = real.get(key), fake.get(key)
        if key == "values":  # uint8 stored or quantised: the same values; uint8 against float is not
            a, b = ("uint8" if a and a.startswith("uint8") else a), ("uint8" if b and b.startswith("uint8") else b)
        if a != b and a is not None and b is not None:
            show = {"resolution": lambda v: "x".join(map(str, v))}.get(key, str)
            out.append(f"{key} {show(a)} (real) vs {show(b)} (generated)")
    return out
