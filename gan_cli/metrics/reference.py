"""Real-data reference features, cached under the data's content and the protocol that embeds it.

A cache entry is named by a digest of: the dataset's content fingerprint (GanData.fingerprint, or for
data in memory a digest of its tensors), the split, the extractor and its weights, the count and seed of
the real subset, and the preprocessing (quantisation, resize). Never by a path or a config: a folder whose
images changed gets a new fingerprint, so its statistics are recomputed, never read stale. Data with no
fingerprint (streamed, and not fingerprinted by its dataset) is embedded afresh every time.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from gan_cli.checkpoint import save_atomic
from gan_cli.data.base import GanData

VERSION = 3  # 2: Inception logits without the fc bias; 3: keyed by content, with quantisation and resize


def content_fingerprint(data: GanData) -> str:
    """The dataset's own fingerprint; for data in memory without one, a digest of its tensors' bytes;
    else "" (unknown: do not cache)."""
    if data.fingerprint:
        return data.fingerprint
    if not data.in_memory:
        return ""
    h = hashlib.blake2b(digest_size=16)
    for t in data.dataset.tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b"")
    return "tensors:" + h.hexdigest()


def reference_features(data: GanData, key: dict[str, Any], cache_dir: str,
                       compute: Callable[[], tuple[Tensor, Tensor | None]]) -> tuple[Tensor, Tensor | None, dict]:
    """(features, logits, facts) of `data`: read from `cache_dir` when the same content and `key` (the
    protocol) computed them before, else `compute()`d and cached. `facts`: fingerprint, digest, cache use."""
    fingerprint = content_fingerprint(data)
    full = {**key, "fingerprint": fingerprint, "version": VERSION}
    digest = hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()
    facts = {"fingerprint": fingerprint or None, "sha256": digest}
    if not fingerprint:
        feats, logits = compute()
        return feats, logits, {**facts, "cache": "none: the data has no content fingerprint, embedded afresh"}
    path = Path(cache_dir).expanduser() / f"reference_{digest[:16]}.pt"
    if path.is_file():
        cached = torch.load(path, weights_only=True)
        return cached["features"], cached["logits"], {**facts, "cache": f"hit: {path}"}
    feats, logits = compute()
    save_atomic({"features": feats, "logits": logits, "key": json.dumps(full)}, path)
    return feats, logits, {**facts, "cache": f"written: {path}"}
