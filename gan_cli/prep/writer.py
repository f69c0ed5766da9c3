"""Writes a prepared dataset (the layout: gan_cli.data.formats).

Written into a temp folder beside `out` and renamed at the end, so a failed or stopped run leaves nothing.
A write that fails (a full disk) removes the temp folder and is one DataError.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from gan_cli.data.formats import FORMAT_VERSION, IMAGES, LABELS, MANIFEST
from gan_cli.errors import DataError



class PreparedWriter:
    def __init__(self, out: Path):
        self.out = out
        self.tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._images = None
        self._labels: list[int] = []
        self._hash = hashlib.sha256()
        self.shape: tuple[int, ...] | None = None
        with self._failing_write_is_one_error():
            self.tmp.mkdir(parents=True)
            self._images = open(self.tmp / IMAGES, "wb")

    def add(self, image: np.ndarray, label: int) -> None:
        self.shape = self.shape or image.shape
        data = image.tobytes()
        with self._failing_write_is_one_error():
            self._images.write(data)
        self._hash.update(data)
        self._labels.append(label)

    def __len__(self) -> int:
        return len(self._labels)

    def finish(self, manifest: dict, overwrite: bool) -> dict:
        with self._failing_write_is_one_error():
            self._images.close()
            labels = np.asarray(self._labels, dtype=np.int64)
            labels.tofile(self.tmp / LABELS)
            self._hash.update(labels.tobytes())
            manifest = {"format_version": FORMAT_VERSION, "count": len(labels), "shape": list(self.shape),
                        "fingerprint": self._hash.hexdigest(), **manifest}
            (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
            replace_folder(self.tmp, self.out, overwrite)
        return manifest

    def abandon(self) -> None:
        if self._images is not None and not self._images.closed:
            self._images.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @contextmanager
    def _failing_write_is_one_error(self):
        """An OSError (a full disk) removes the temp folder and becomes one DataError naming `out`."""
        try:
            yield
        except OSError as e:
            self.abandon()
            raise DataError(f"out={self.out}: writing the prepared dataset failed ({e.strerror or e}); its temp "
                            f"folder {self.tmp} was removed and nothing was written to out. Free some space (or "
                            f"fix the folder's permissions) and run it again, or choose another out=.") from e


def replace_folder(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename `tmp` to `out`; an existing `out` (overwrite) is moved aside first and removed after, so that
    `out` holds the old dataset or the new one, never a mix of both."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if overwrite and out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
