"""Unreadable image files in streamed folder datasets: skipped deterministically, each named once.

An item whose file cannot be decoded (empty, truncated, not an image, a decompression bomb) is
replaced by the next readable item (index + 1, + 2, ..., wrapping round). The substitute depends
only on which files are unreadable, so every batch stays full and a resumed run reads exactly what
the uninterrupted run read. A pair is one item: either side unreadable skips the pair whole.

The warning naming a file is printed once, by the main process: a DataLoader worker cannot print
(the progress bar owns the terminal), so it hands what it skipped over with its batch (`collate`),
and `unpack` names the files where the batch arrives.
"""
from __future__ import annotations

import logging
import os
from itertools import islice
from typing import Any, Iterator

from PIL import Image
from torch.utils.data import default_collate, get_worker_info

from gan_cli.errors import DataError
from gan_cli.logging import console as ui

log = logging.getLogger(__name__)
_pending: list[tuple[str, str]] = []  # in a worker: files skipped since its last batch
_reported: set[str] = set()  # in the main process: files already named


class UnreadableFile(Exception):
    def __init__(self, file: str | os.PathLike, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file, self.reason = str(file), reason


def load_image(file: str | os.PathLike, mode: str) -> Image.Image:
    """Open an image as ``mode`` ("L" or "RGB"); GIFs give their first frame. UnreadableFile if it cannot be decoded."""
    try:
        with Image.open(file) as img:
            return img.convert(mode)
    except Image.DecompressionBombError:
        raise UnreadableFile(file, "a decompression bomb (more pixels than PIL's Image.MAX_IMAGE_PIXELS)") from None
    except Exception as err:  # noqa: BLE001 - decoders raise many kinds; any of them means "cannot be read"
        if os.path.isfile(file) and os.path.getsize(file) == 0:
            raise UnreadableFile(file, "an empty file") from None
        if isinstance(err, Image.UnidentifiedImageError):
            raise UnreadableFile(file, "not an image PIL can identify") from None
        raise UnreadableFile(file, f"not a readable image ({type(err).__name__}: {err})") from None


def skipped(bad: UnreadableFile) -> None:
    """Name `bad` now (main process) or with the worker's next batch."""
    if get_worker_info() is None:
        _warn(bad.file, bad.reason)
    else:
        _pending.append((bad.file, bad.reason))


def _warn(file: str, reason: str) -> None:
    if file in _reported:
        return
    _reported.add(file)
    log.warning("skipped unreadable file %s: %s", file, reason)
    ui.console.print(f"[yellow]Skipped unreadable file[/] {file}: {reason}. Its item is replaced by the next "
                     f"readable one.", highlight=False, soft_wrap=True)


def collate(items: list) -> tuple[Any, tuple[tuple[str, str], ...]]:
    """DataLoader collate_fn: the default batch, plus the files this worker skipped since its last batch."""
    report = tuple(_pending)
    _pending.clear()
    return default_collate(items), report


def unpack(batch: tuple[Any, tuple[tuple[str, str], ...]]) -> Any:
    """A batch of `collate`, back in the main process: its skipped files named, the default batch returned."""
    items, report = batch
    for file, reason in report:
        _warn(file, reason)
    return items


def nothing_readable(root: str | os.PathLike, count: int, first: UnreadableFile) -> DataError:
    return DataError(f"None of the {count} image files under {root} can be read (the first, {first}; each is named "
                     f"above). Put images PIL can decode (PNG, JPEG, BMP, WebP, GIF, TIFF) there, or set dataset.root "
                     f"to a folder that holds them.")


class SkipUnreadable:
    """Mixin for a Dataset of image files: ``read(i)`` reads item i or raises UnreadableFile; indexing
    gives item i or the next readable one (see the module doc). ``root``: the folder, for the error
    when nothing at all can be read."""

    root: str | os.PathLike

    def read(self, index: int) -> Any:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Any:
        return next(self._readable(index))

    def readable(self, count: int) -> list:
        """The first `count` readable items, in order and without substitutes (a held-out split)."""
        return list(islice(self._readable(0), count))

    def _readable(self, start: int) -> Iterator[Any]:
        """The readable items from `start` on, once round; DataError if there are none."""
        n, found, first = len(self), False, None  # type: ignore[arg-type]
        for k in range(n):
            try:
                item = self.read((start + k) % n)
            except UnreadableFile as bad:
                skipped(bad)
                first = first or bad
                continue
            found = True
            yield item
        if not found:
            raise nothing_readable(self.root, n, first)
