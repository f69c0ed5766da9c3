"""Finiteness of a nested state (state dicts, optimizer states): what may be saved."""
from __future__ import annotations

from typing import Any

import torch


def nonfinite(tree: Any, path: str = "") -> list[str]:
    """Paths of the floating-point tensors in `tree` (dicts, lists, tensors) that hold NaN or Inf."""
    if isinstance(tree, torch.Tensor):
        return [path] if tree.is_floating_point() and not bool(torch.isfinite(tree).all()) else []
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in nonfinite(v, f"{path}.{k}" if path else str(k))]
    if isinstance(tree, (list, tuple)):
        return [p for i, v in enumerate(tree) for p in nonfinite(v, f"{path}[{i}]")]
    return []
