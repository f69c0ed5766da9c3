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

from gan_cli.data.formats import IMAGES, KIND_VERSIONS, LABELS, MANIFEST, TRANSLATION_PARTS, part_files
from gan_cli.errors import DataError


class _Part:
    """One images file and its labels, hashed as they are written (images bytes, then labels bytes)."""

    def __init__(self, folder: Path, images: str, labels: str):
        self.labels_file = folder / labels
        self.labels: list[int] = []
        self.hash = hashlib.sha256()
        self.shape: tuple[int, ...] | None = None
        self.images = open(folder / images, "wb")

    def add(self, image: np.ndarray, label: int) -> None:
        self.shape = self.shape or image.shape
        data = image.tobytes()
        self.images.write(data)
        self.hash.update(data)
        self.labels.append(label)

    def close(self) -> None:
        """Close the images file and write the labels (both into the hash)."""
        self.images.close()
        labels = np.asarray(self.labels, dtype=np.int64)
        labels.tofile(self.labels_file)
        self.hash.update(labels.tobytes())

    def abandon(self) -> None:
        if self.images is not None and not self.images.closed:
            self.images.close()


class _TempFolder:
    """The temp folder parts are written into; `publish` renames it to `out`, `abandon` removes it."""

    def __init__(self, out: Path, files: dict[str, tuple[str, str]]):
        self.out = out
        self.tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.parts: dict[str, _Part] = {}
        with self.failing_write_is_one_error():
            self.tmp.mkdir(parents=True)
            for name, (images, labels) in files.items():
                self.parts[name] = _Part(self.tmp, images, labels)

    def publish(self, manifest: dict, overwrite: bool) -> None:
        with self.failing_write_is_one_error():
            (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
            replace_folder(self.tmp, self.out, overwrite)

    def abandon(self) -> None:
        for part in self.parts.values():
            part.abandon()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @contextmanager
    def failing_write_is_one_error(self):
        """An OSError (a full disk) removes the temp folder and becomes one DataError naming `out`."""
        try:
            yield
        except OSError as e:
            self.abandon()
            raise DataError(f"out={self.out}: writing the prepared dataset failed ({e.strerror or e}); its temp "
                            f"folder {self.tmp} was removed and nothing was written to out. Free some space (or "
                            f"fix the folder's permissions) and run it again, or choose another out=.") from e


class PreparedWriter:
    """Single images (kind "image"): `add(image, label)` in order, then `finish(manifest)`."""

    def __init__(self, out: Path):
        self.out = out
        self._folder = _TempFolder(out, {"images": (IMAGES, LABELS)})
        self._part = self._folder.parts["images"]

    @property
    def shape(self) -> tuple[int, ...] | None:
        return self._part.shape

    def add(self, image: np.ndarray, label: int) -> None:
        with self._folder.failing_write_is_one_error():
            self._part.add(image, label)

    def __len__(self) -> int:
        return len(self._part.labels)

    def finish(self, manifest: dict, overwrite: bool) -> dict:
        with self._folder.failing_write_is_one_error():
            self._part.close()
        manifest = {"format_version": KIND_VERSIONS["image"], "count": len(self), "shape": list(self.shape),
                    "fingerprint": self._part.hash.hexdigest(), **manifest}
        self._folder.publish(manifest, overwrite)
        return manifest

    def abandon(self) -> None:
        self._folder.abandon()


class TranslationWriter:
    """Translation data (kinds "paired", "unpaired"): `add(part, image, label)` into the parts of
    gan_cli.data.formats.TRANSLATION_PARTS, then `finish(manifest)`. The fingerprint is a digest of the
    kind and each part's name, count, shape and content."""

    def __init__(self, out: Path, kind: str):
        self.out, self.kind = out, kind
        self._folder = _TempFolder(out, {part: part_files(part) for part in TRANSLATION_PARTS})

    def add(self, part: str, image: np.ndarray, label: int) -> None:
        with self._folder.failing_write_is_one_error():
            self._folder.parts[part].add(image, label)

    def count(self, part: str) -> int:
        return len(self._folder.parts[part].labels)

    def finish(self, manifest: dict, overwrite: bool) -> dict:
        parts = self._folder.parts
        with self._folder.failing_write_is_one_error():
            for part in parts.values():
                part.close()
        summary = {name: {"count": len(p.labels), "shape": list(p.shape or ())} for name, p in parts.items()}
        digest = hashlib.sha256(json.dumps([self.kind, summary, [p.hash.hexdigest() for p in parts.values()]],
                                           sort_keys=True).encode()).hexdigest()
        manifest = {"format_version": KIND_VERSIONS[self.kind], "kind": self.kind, "parts": summary,
                    "fingerprint": digest, **manifest}
        self._folder.publish(manifest, overwrite)
        return manifest

    def abandon(self) -> None:
        self._folder.abandon()


def replace_folder(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename `tmp` to `out`; an existing `out` (overwrite) is moved aside first and removed after, so that
    `out` holds the old dataset or the new one, never a mix of both."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if overwrite and out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
