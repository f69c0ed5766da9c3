"""`gan prepare kind=paired|unpaired`: a translation folder -> the uint8 parts of gan_cli.data.formats.

The folder is read as `dataset=paired_folder` / `unpaired_folder` read it, with their functions (the layouts,
matching A and B by name, the held-out split, A's and B's channels, direction) and each image is squashed to
`resolution` as they squash it, so that `dataset=prepared` gives their items to within uint8 rounding. An
unreadable file is skipped and listed in the manifest; a pair is skipped whole.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
from omegaconf import DictConfig, OmegaConf

from gan_cli.data.translation_folders import Keys, Pair, find_domains, find_pairs, read_pair, squash, swap_of
from gan_cli.data.unreadable import UnreadableFile, load_image
from gan_cli.data.vision import resolve_root
from gan_cli.errors import DataError
from gan_cli.prep.pool import chunk_results
from gan_cli.prep.progress import progress_bar, reasons
from gan_cli.prep.writer import TranslationWriter

CHUNK = 32


class Skipped(NamedTuple):
    """A worker's answer for an item it could not read (picklable, unlike UnreadableFile)."""

    file: str
    reason: str


@dataclass(frozen=True)
class Job:
    """The items of one split, decoded by `work` (a picklable function of a chunk) into `parts`."""

    what: str  # in messages: "training pairs", "testA images", ...
    split: str  # in the manifest's skipped entries
    parts: tuple[str, ...]
    items: list
    work: Callable[[list], list]


# ---------------------------------------------------------------------------- in the workers


def _pixels(img) -> np.ndarray:
    """A PIL image -> uint8 (C, R, R), the layout ToTensor gives."""
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None].copy() if arr.ndim == 2 else arr.transpose(2, 0, 1).copy()


def _pairs_chunk(pairs: list[Pair], resolution: int, mode_a: str, mode_b: str, swap: bool) -> list:
    """Each pair -> (a, b) uint8 arrays, or Skipped (the pair whole)."""
    resize, out = squash(resolution), []
    for pair in pairs:
        try:
            a, b = read_pair(pair, mode_a, mode_b, swap)
        except UnreadableFile as bad:
            out.append(Skipped(bad.file, bad.reason))
            continue
        out.append((_pixels(resize(a)), _pixels(resize(b))))
    return out


def _images_chunk(files: list[Path], resolution: int, mode: str) -> list:
    """Each file -> (x,) a uint8 array, or Skipped."""
    resize, out = squash(resolution), []
    for file in files:
        try:
            out.append((_pixels(resize(load_image(file, mode))),))
        except UnreadableFile as bad:
            out.append(Skipped(bad.file, bad.reason))
    return out


def _call(task: tuple[Callable[[list], list], list]) -> list:
    work, chunk = task
    return work(chunk)


# ---------------------------------------------------------------------------- in the main process


def _modes(cfg: DictConfig) -> tuple[str, str]:
    channels_b = cfg.channels if cfg.channels_b is None else cfg.channels_b
    return ("L" if cfg.channels == 1 else "RGB"), ("L" if channels_b == 1 else "RGB")


def _paired_jobs(cfg: DictConfig, source: Path) -> tuple[list[Job], dict]:
    swap, (mode_a, mode_b) = swap_of(cfg.direction, "direction"), _modes(cfg)
    layout = find_pairs(source, cfg.split, Keys("gan prepare kind=paired", "source", "split"))
    work = partial(_pairs_chunk, resolution=cfg.resolution, mode_a=mode_a, mode_b=mode_b, swap=swap)
    jobs = [Job("training pairs", "train", ("train_a", "train_b"), layout.train, work),
            Job(f"held-out pairs (from {layout.held_from})", "test", ("test_a", "test_b"), layout.held, work)]
    return jobs, {"train": str(cfg.split), "test": layout.held_from}


def _unpaired_jobs(cfg: DictConfig, source: Path) -> tuple[list[Job], dict]:
    domains = find_domains(source, Keys("gan prepare kind=unpaired", "source", ""))
    jobs, splits = [], {}
    for side, mode in zip("AB", _modes(cfg)):
        domain, lower = domains[side], side.lower()
        work = partial(_images_chunk, resolution=cfg.resolution, mode=mode)
        jobs += [Job(f"train{side} images", f"train{side}", (f"train_{lower}",), domain.train, work),
                 Job(f"held-out {side} images (from {domain.held_from})", f"test{side}", (f"test_{lower}",),
                     domain.held, work)]
        splits[side] = {"train": f"train{side}", "test": domain.held_from}
    return jobs, splits


def _skip_entry(source: Path, job: Job, item: Any, skip: Skipped) -> dict:
    """The manifest's record of a skipped item: the bad file, why, and (separate A/B files) the pair skipped."""
    entry = {"file": _relative(skip.file, source), "reason": skip.reason, "split": job.split}
    if isinstance(item, tuple) and item[1] is not None:
        entry["pair"] = [_relative(f, source) for f in item]
    return entry


def _relative(file: str | os.PathLike, source: Path) -> str:
    return Path(file).relative_to(source).as_posix()


def _files_of(job: Job) -> list[Path]:
    return [f for item in job.items for f in (item if isinstance(item, tuple) else (item,)) if f is not None]


def _nothing_readable(source: Path, job: Job, skipped: list[dict]) -> DataError:
    folders = sorted({str(f.parent) for f in _files_of(job)})
    where = " and ".join(folders) if len(folders) <= 2 else os.path.commonpath(folders)
    first = next(s for s in skipped if s["split"] == job.split)
    return DataError(f"source={source}: none of the {len(job.items)} {job.what} under {where} can be read "
                     f"({reasons([s for s in skipped if s['split'] == job.split])}; the first, {first['file']}: "
                     f"{first['reason']}). Put images PIL can decode (PNG, JPEG, BMP, WebP, GIF, TIFF) there; "
                     f"nothing was written.")


def prepare_translation(cfg: DictConfig, out: Path, workers: int) -> dict:
    """Write the prepared translation dataset; returns its manifest."""
    kind, source = str(cfg.kind), resolve_root(str(cfg.source))
    if not source.is_dir():
        raise DataError(f"source={source}: kind={kind} reads a folder (a zip, tar or torchvision source is for "
                        f"kind=image), and there is no such folder. Give the folder dataset={kind}_folder reads.")
    jobs, splits = (_paired_jobs if kind == "paired" else _unpaired_jobs)(cfg, source)
    tasks = [(job, job.items[i:i + CHUNK]) for job in jobs for i in range(0, len(job.items), CHUNK)]
    skipped: list[dict] = []
    writer = None
    try:
        writer = TranslationWriter(out, kind)
        with chunk_results(_call, [(job.work, chunk) for job, chunk in tasks], workers) as results, \
                progress_bar(sum(len(job.items) * len(job.parts) for job in jobs)) as advance:
            for (job, chunk), decoded in zip(tasks, results):
                for item, result in zip(chunk, decoded):
                    if isinstance(result, Skipped):
                        skipped.append(_skip_entry(source, job, item, result))
                    else:
                        for part, image in zip(job.parts, result):
                            writer.add(part, image, -1)
                    advance(len(job.parts))
        for job in jobs:
            if not writer.count(job.parts[0]):
                raise _nothing_readable(source, job, skipped)
        manifest = writer.finish(_manifest(cfg, source, writer, splits, skipped), cfg.overwrite)
    except BaseException:
        if writer is not None:
            writer.abandon()
        raise
    return manifest


def _manifest(cfg: DictConfig, source: Path, writer: TranslationWriter, splits: dict, skipped: list[dict]) -> dict:
    channels_b = cfg.channels if cfg.channels_b is None else cfg.channels_b
    count_a, count_b = writer.count("train_a"), writer.count("train_b")
    return {"source": str(source), "options": OmegaConf.to_container(cfg, resolve=True),
            "count": count_a if cfg.kind == "paired" else max(count_a, count_b),
            "shape": [int(channels_b), cfg.resolution, cfg.resolution],
            "input_shape": [int(cfg.channels), cfg.resolution, cfg.resolution], "splits": splits,
            "num_classes": 0, "class_names": [], "skipped_count": len(skipped), "skipped": skipped}
