"""Image-to-image translation data from local folders, and the user's own images for `gan sample input=`.

``paired_folder``: pix2pix data, side-by-side A|B images or A/ and B/ folders matched by file
name. ``unpaired_folder``: CycleGAN data (trainA, trainB, optional testA, testB). Training
items are streamed from disk; the held-out split is loaded into memory as a TranslationTest.
An unreadable file is skipped with a warning, a pair whole (gan_cli/data/unreadable.py).
`gan prepare kind=paired|unpaired` (gan_cli/prep/translation.py) reads the same layouts with the
same functions (``find_pairs``, ``read_pair``, ``find_domains``, ``squash``) and stores the pixels.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.transforms.functional import to_pil_image

from gan_cli.data.base import GanData, TranslationTest
from gan_cli.data.embedded import check_channels, check_int
from gan_cli.data.fingerprint import files_fingerprint
from gan_cli.data.unreadable import SkipUnreadable, UnreadableFile, load_image
from gan_cli.data.vision import IMAGE_EXTENSIONS, _is_image, resolve_root
from gan_cli.errors import ConfigError, DataError

_EXTS = ", ".join(IMAGE_EXTENSIONS)
Pair = tuple[Path, Optional[Path]]  # a side-by-side file (file, None) or two files (file_a, file_b)


@dataclass(frozen=True)
class Keys:
    """How messages name the reader and its options: `dataset=paired_folder`'s, or `gan prepare kind=...`'s."""

    reader: str
    root: str = "dataset.root"
    split: str = "dataset.split"


PAIRED_KEYS, UNPAIRED_KEYS = Keys("paired_folder"), Keys("unpaired_folder")


def paired_layouts(keys: Keys = PAIRED_KEYS) -> str:
    return (f"{keys.reader} accepts two layouts: side-by-side images (left half A, right half B, as in pix2pix's "
            "facades or edges2shoes) in root/train/ and optionally root/test/ (or root/val/); or separate folders "
            "root/A/train/ and root/B/train/ (optionally A/test + B/test, or A/val + B/val) holding the same file "
            "names.")


def unpaired_layout(keys: Keys = UNPAIRED_KEYS) -> str:
    return f"{keys.reader} expects root/trainA/ and root/trainB/, optionally root/testA/ and root/testB/."


def _images_under(folder: Path) -> list[Path]:
    """Every image file under ``folder``, recursively, hidden folders skipped, sorted."""
    found: list[Path] = []
    for parent, subdirs, files in os.walk(folder):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        found += [Path(parent) / f for f in files if _is_image(f)]
    return sorted(found)


def squash(resolution: int) -> transforms.Resize:
    """PIL image -> PIL image squashed to a square (no crop, so A and B stay aligned); `gan prepare` stores these."""
    return transforms.Resize((resolution, resolution))


def _transform(resolution: int, channels: int) -> transforms.Compose:
    """PIL image -> (C, R, R) in [-1, 1], squashed to a square (`squash`)."""
    return transforms.Compose([
        squash(resolution),
        transforms.ToTensor(),
        transforms.Normalize([0.5] * channels, [0.5] * channels),
    ])


def _mode(key: str, channels: object) -> str:
    return "L" if check_channels(channels, key) == 1 else "RGB"


def swap_of(direction: object, key: str = "dataset.direction") -> bool:
    """Whether A and B are swapped: direction BtoA."""
    if direction not in ("AtoB", "BtoA"):
        raise ConfigError(f"{key} must be AtoB (left/A -> right/B) or BtoA (the reverse), got {direction!r}.")
    return direction == "BtoA"


def _hold_out(items: list, what: str) -> tuple[list, list]:
    """No test folder: the last 10% (at least 1) of the sorted items are held out; (train, held-out)."""
    n_out = max(1, len(items) // 10)
    if len(items) - n_out < 1:
        raise DataError(f"{what} holds only {len(items)} item(s) and there is no test folder: with no test "
                        f"split the last 10% are held out, so at least 2 are needed. Add more images or a test split.")
    return items[:-n_out], items[-n_out:]


# ---------------------------------------------------------------------------- paired


def read_pair(pair: Pair, mode_a: str, mode_b: str, swap: bool) -> tuple[Image.Image, Image.Image]:
    """A pair's (A, B) images at their own size, as `mode_a` / `mode_b`; UnreadableFile when either side cannot
    be read (the pair is then skipped whole)."""
    first, second = pair
    if second is None:  # side by side: split first, then each half is resized
        img = load_image(first, "RGB")
        half, h = img.width // 2, img.height  # an odd width loses its last column
        if half < 1:
            raise UnreadableFile(first, "1 pixel wide: a side-by-side image needs width >= 2 (left half A, "
                                        "right half B)")
        left, right = img.crop((0, 0, half, h)), img.crop((half, 0, 2 * half, h))
    else:
        left, right = load_image(first, "RGB"), load_image(second, "RGB")
    a, b = (right, left) if swap else (left, right)
    return a.convert(mode_a), b.convert(mode_b)


class _Pairs(SkipUnreadable, Dataset):
    """``(a, b, -1)`` from a list of ``Pair``."""

    def __init__(self, root: Path, pairs: list[Pair], resolution: int, mode_a: str, mode_b: str, swap: bool) -> None:
        self.root, self.pairs, self.mode_a, self.mode_b, self.swap = root, pairs, mode_a, mode_b, swap
        self.transform_a = _transform(resolution, len(mode_a))
        self.transform_b = _transform(resolution, len(mode_b))

    def __len__(self) -> int:
        return len(self.pairs)

    def read(self, index: int):
        a, b = read_pair(self.pairs[index], self.mode_a, self.mode_b, self.swap)
        return self.transform_a(a), self.transform_b(b), -1


@dataclass(frozen=True)
class PairedLayout:
    """A paired folder's training pairs and held-out pairs; ``held_from``: "test", "val" or "last 10% of <split>"."""

    train: list[Pair]
    held: list[Pair]
    held_from: str


def _matched(root: Path, split: str, keys: Keys) -> list[Pair]:
    """A/<split> and B/<split> files paired by relative name; any file without a partner is an error."""
    names = {side: {p.relative_to(root / side / split).as_posix() for p in _images_under(root / side / split)}
             for side in ("A", "B")}
    lonely = sorted([(n, "A", "B") for n in names["A"] - names["B"]] + [(n, "B", "A") for n in names["B"] - names["A"]])
    if lonely:
        name, has, lacks = lonely[0]
        raise DataError(f"{keys.reader}: {has}/{split}/{name} has no partner in {lacks}/{split} "
                        f"({len(lonely)} unmatched file(s) in all under {keys.root}={root}). {paired_layouts(keys)}")
    return [(root / "A" / split / n, root / "B" / split / n) for n in sorted(names["A"])]


def find_pairs(path: Path, split: str = "train", keys: Keys = PAIRED_KEYS) -> PairedLayout:
    """The pairs under `path`, its layout detected (`paired_layouts`): trains on `split`; holds out ``test/`` or
    else ``val/``, and if neither exists the last 10% of the sorted `split` pairs (at least 1)."""
    if not path.is_dir():
        raise DataError(f"Paired image folder {path} ({keys.root}) does not exist or is not a folder. "
                        f"{paired_layouts(keys)} Nothing is downloaded at run time.")
    separate = (path / "A").is_dir() and (path / "B").is_dir()
    base = path / "A" if separate else path
    if not isinstance(split, str) or not split or not (base / split).is_dir():
        where = f"{path}/A/{split}/ and {path}/B/{split}/" if separate else f"{path}/{split}/"
        raise DataError(f"{keys.reader}: no training split {where} ({keys.split}={split!r} under "
                        f"{keys.root}={path}). {paired_layouts(keys)}")

    def pairs(name: str) -> list[Pair]:
        found = _matched(path, name, keys) if separate else [(f, None) for f in _images_under(path / name)]
        if not found:
            where = f"{path}/A/{name}/ and {path}/B/{name}/" if separate else f"{path}/{name}/"
            raise DataError(f"{keys.reader}: no images in {where} ({keys.root}={path}); accepted extensions: "
                            f"{_EXTS}. {paired_layouts(keys)}")
        return found

    train = pairs(split)
    held_name = next((s for s in ("test", "val") if s != split and (base / s).is_dir()), None)
    if held_name is None:
        train, held = _hold_out(train, f"{path}/{split}")
        return PairedLayout(train, held, f"last 10% of {split}")
    return PairedLayout(train, pairs(held_name), held_name)


def paired_folder(root: str = "data/paired", resolution: int = 256, channels: int = 3, channels_b: int | None = None,
                  direction: str = "AtoB", split: str = "train", test_max: int = 500) -> GanData:
    """Aligned (A, B) image pairs for pix2pix; the layout and the held-out split: ``find_pairs``.

    ``direction="BtoA"`` swaps A and B. ``channels`` is A's, ``channels_b`` B's (default: the same).
    """
    check_int("resolution", resolution, 1)
    check_int("test_max", test_max, 1)
    mode_a = _mode("channels", channels)
    mode_b = _mode("channels_b", channels if channels_b is None else channels_b)
    swap = swap_of(direction)
    path = resolve_root(root)
    layout = find_pairs(path, split)
    test_ds = _Pairs(path, layout.held, resolution, mode_a, mode_b, swap=swap)
    items = test_ds.readable(test_max)
    inputs, targets = (torch.stack([item[k] for item in items]) for k in (0, 1))
    test = TranslationTest(inputs=inputs, domain_b=targets, targets=targets, labels=None, domain_a=inputs)
    train_ds = _Pairs(path, layout.train, resolution, mode_a, mode_b, swap=swap)
    train_ds[0]  # here, in the main process: one clear error if no pair at all can be read
    files = [f for pair in layout.train + layout.held for f in pair if f is not None]
    return GanData(train_ds, kind="paired", shape=(len(mode_b), resolution, resolution),
                   input_shape=(len(mode_a), resolution, resolution), name=path.name or "paired_folder", test=test,
                   fingerprint=files_fingerprint(files, path, dataset="paired_folder", resolution=resolution,
                                                 modes=(mode_a, mode_b), direction=direction, split=split,
                                                 test_max=test_max))


# ---------------------------------------------------------------------------- unpaired


class _Images(SkipUnreadable, Dataset):
    """One domain's image files -> ``(C, R, R)`` tensors."""

    def __init__(self, root: Path, files: list[Path], resolution: int, mode: str) -> None:
        self.root, self.files, self.mode, self.transform = root, files, mode, _transform(resolution, len(mode))

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int):
        return self.transform(load_image(self.files[index], self.mode))


def unpaired_perm(count: int) -> list[int]:
    """The fixed permutation (seed 0) of `count` items that pairs B images with A images (`unpaired_rows`)."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(0)).tolist()


def unpaired_rows(count_a: int, count_b: int) -> tuple[list[int], list[int]]:
    """Which images make the max(count_a, count_b) items of unpaired training data: item i is
    A[i % count_a] with B[perm[i] % count_b] (`unpaired_perm`)."""
    perm = unpaired_perm(max(count_a, count_b))
    return [i % count_a for i in range(len(perm))], [p % count_b for p in perm]


class _Unpaired(Dataset):
    """``(a, b, -1, -1)``: the images of `unpaired_rows`."""

    def __init__(self, a: _Images, b: _Images) -> None:
        self.a, self.b = a, b
        self.perm = unpaired_perm(len(self))
        self.rows_a, self.rows_b = unpaired_rows(len(a), len(b))

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, index: int):
        return self.a[self.rows_a[index]], self.b[self.rows_b[index]], -1, -1


@dataclass(frozen=True)
class Domain:
    """One unpaired domain's training and held-out files; ``held_from``: "testA" or "last 10% of trainA" (B alike)."""

    train: list[Path]
    held: list[Path]
    held_from: str


def find_domains(path: Path, keys: Keys = UNPAIRED_KEYS) -> dict[str, Domain]:
    """Domains "A" and "B" under `path` (``trainA``, ``trainB``, searched recursively). Held out: ``testA`` /
    ``testB`` where they hold images, else the last 10% (at least 1) of that domain's sorted training images."""
    if not path.is_dir():
        raise DataError(f"Unpaired image folder {path} ({keys.root}) does not exist or is not a folder. "
                        f"{unpaired_layout(keys)} Nothing is downloaded at run time.")
    domains = {}
    for side in ("A", "B"):
        train = _images_under(path / f"train{side}")
        if not train:
            raise DataError(f"{keys.reader}: no images in {path / f'train{side}'} (missing or empty; "
                            f"{keys.root}={path}). Accepted extensions: {_EXTS}. {unpaired_layout(keys)}")
        held, held_from = _images_under(path / f"test{side}"), f"test{side}"
        if not held:
            (train, held), held_from = _hold_out(train, str(path / f"train{side}")), f"last 10% of train{side}"
        domains[side] = Domain(train, held, held_from)
    return domains


def unpaired_folder(root: str = "data/unpaired", resolution: int = 256, channels: int = 3,
                    channels_b: int | None = None, test_max: int = 500) -> GanData:
    """Two unrelated image domains for CycleGAN; the layout and the held-out split: ``find_domains``."""
    check_int("resolution", resolution, 1)
    check_int("test_max", test_max, 1)
    mode_a = _mode("channels", channels)
    mode_b = _mode("channels_b", channels if channels_b is None else channels_b)
    path = resolve_root(root)
    found, loaded, files = find_domains(path), {}, []
    for side, mode in (("A", mode_a), ("B", mode_b)):
        domain = found[side]
        train_ds = _Images(path / f"train{side}", domain.train, resolution, mode)
        train_ds[0]  # here, in the main process: one clear error if nothing at all can be read
        held_ds = _Images(domain.held[0].parent, domain.held, resolution, mode)
        loaded[side] = (train_ds, torch.stack(held_ds.readable(test_max)))
        files += domain.train + domain.held
    (train_a, held_a), (train_b, held_b) = loaded["A"], loaded["B"]
    return GanData(_Unpaired(train_a, train_b), kind="unpaired",
                   shape=(len(mode_b), resolution, resolution), input_shape=(len(mode_a), resolution, resolution),
                   name=path.name or "unpaired_folder",
                   test=TranslationTest(inputs=held_a, domain_b=held_b, domain_a=held_a),
                   fingerprint=files_fingerprint(files, path, dataset="unpaired_folder", resolution=resolution,
                                                 modes=(mode_a, mode_b), test_max=test_max))


# ---------------------------------------------------------------------------- the user's images


def load_user_images(path: str | os.PathLike, channels: int, resolution: int) -> tuple[Tensor, list[tuple[int, int]], list[Path]]:
    """One image, or every image in a folder (recursively, sorted) -> ((N, C, R, R) in [-1, 1], sizes (w, h), files)."""
    where = resolve_root(path)
    hint = f"input= expects an image file or a folder of images ({_EXTS})."
    if not where.exists():
        raise ConfigError(f"input={path}: {where} does not exist. {hint}")
    files = _images_under(where) if where.is_dir() else [where] if _is_image(where) else []
    if not files:
        raise ConfigError(f"input={path}: no images found at {where}. {hint}")
    mode, transform = "L" if channels == 1 else "RGB", _transform(resolution, channels)
    images, sizes = [], []
    for file in files:
        try:
            img = load_image(file, mode)
        except UnreadableFile as err:
            raise ConfigError(f"input={path}: cannot read {file} as an image ({err.reason}). {hint}") from None
        sizes.append(img.size)
        images.append(transform(img))
    return torch.stack(images), sizes, files


def save_user_images(samples: Tensor, sizes: list[tuple[int, int]], files: list[Path], out: Path) -> None:
    """Each sample as ``out/<path relative to the inputs' common folder>.png``, at its input's (w, h)."""
    files = [Path(f) for f in files]
    base = Path(os.path.commonpath([f.parent for f in files])) if files else Path()
    for sample, (w, h), file in zip(samples, sizes, files):
        target = Path(out) / file.relative_to(base).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        img = to_pil_image(((sample.detach().float().cpu() + 1) / 2).clamp(0, 1))
        img.resize((w, h), Image.BILINEAR).save(target)
