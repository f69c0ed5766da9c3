"""Every evaluation kept: one JSON file per protocol in `<folder>/evals/`, beside `<folder>/eval.json`.

An entry is named by the checkpoint step and a digest of its protocol's identity (the metrics, extractor
and weights, counts, seed, truncation, resize, quantisation, reference fingerprint, generator), so a sweep
(`gan eval -m ckpt=RUN truncation=0.5,1.0`) keeps one file per point and a re-run with the same protocol
replaces only its own file. One file per entry, each written atomically (temp file, then os.replace), lets
parallel sweep jobs write at once without losing each other's entries. `gan eval` also writes the latest
result to `<folder>/eval.json`; evaluations during training go to the same `<run>/evals/`.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

FOLDER = "evals"
IDENTITY = ("extractor", "extractor_weights_sha256", "num_real", "num_fake", "num_heldout", "seed", "truncation",
            "resize", "quantize", "kid", "reference_fingerprint", "heldout_fingerprint", "real", "fake", "step",
            "generator")


def write_json_atomic(obj: Any, path: Path) -> None:
    """`path` is always the old or the new complete file: written to a temp file, synced, then renamed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(obj, indent=2, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def identity(results: dict[str, float], protocol: dict[str, Any]) -> dict[str, Any]:
    """What makes two evaluations the same point: the metric names and the protocol's choices."""
    return {"metrics": sorted(results), **{k: protocol.get(k) for k in IDENTITY}}


def record(folder: Path, results: dict[str, float], protocol: dict[str, Any]) -> Path:
    """Store one evaluation in `folder`/evals/, replacing the entry of the same protocol; returns its file."""
    key = identity(results, protocol)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    step = protocol.get("step")
    name = f"step_{step:07d}_{digest}.json" if isinstance(step, int) else f"{digest}.json"
    path = Path(folder) / FOLDER / name
    path.parent.mkdir(parents=True, exist_ok=True)
    written = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    write_json_atomic({"metrics": results, "protocol": protocol, "identity": key, "written": written}, path)
    return path


def read_history(folder: Path) -> list[dict[str, Any]]:
    """Every kept evaluation of `folder`, by step, then by time written."""
    entries = [json.loads(p.read_text()) for p in sorted((Path(folder) / FOLDER).glob("*.json"))]
    return sorted(entries, key=lambda e: (e["protocol"].get("step") or 0, e["written"]))
