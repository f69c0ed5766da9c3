"""The prepared-dataset format: <out>/images.u8 (N, C, R, R) uint8 raw, labels.i64 (N,) int64, manifest.json.

Written into a temp folder beside `out` and renamed at the end, so a failed or stopped run leaves nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
IMAGES, LABELS, MANIFEST = "images.u8", "labels.i64", "manifest.json"


class PreparedWriter:
    def __init__(self, out: Path):
        self.out = out
        self.tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self._images = open(self.tmp / IMAGES, "wb")
        self._labels: list[int] = []
        self._hash = hashlib.sha256()
        self.shape: tuple[int, ...] | None = None

    def add(self, image: np.ndarray, label: int) -> None:
        self.shape = self.shape or image.shape
        data = image.tobytes()
        self._images.write(data)
        self._hash.update(data)
        self._labels.append(label)

    def __len__(self) -> int:
        return len(self._labels)

    def finish(self, manifest: dict, overwrite: bool) -> dict:
        self._images.close()
        labels = np.asarray(self._labels, dtype=np.int64)
        labels.tofile(self.tmp / LABELS)
        self._hash.update(labels.tobytes())
        manifest = {"format_version": FORMAT_VERSION, "count": len(labels), "shape": list(self.shape),
                    "fingerprint": self._hash.hexdigest(), **manifest}
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        if overwrite and self.out.exists():
            shutil.rmtree(self.out)
        os.replace(self.tmp, self.out)
        return manifest

    def abandon(self) -> None:
        if not self._images.closed:
            self._images.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
