"""Image-to-image translation data from local folders, and the user's own images for `gan sample input=`.

``paired_folder``: pix2pix data, side-by-side A|B images or A/ and B/ folders matched by file
name. ``unpaired_folder``: CycleGAN data (trainA, trainB, optional testA, testB). Training
items are streamed from disk; the held-out split is loaded into memory as a TranslationTest.
An unreadable file is skipped with a warning, a pair whole (gan_cli/data/unreadable.py).
"""
from __future__ import annotations

import os
from pathlib import Path

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
_PAIRED_LAYOUTS = (
    "paired_folder accepts two layouts: side-by-side images (left half A, right half B, as in pix2pix's "
    "facades or edges2shoes) in root/train/ and optionally root/test/ (or root/val/); or separate folders "
    "root/A/train/ and root/B/train/ (optionally A/test + B/test, or A/val + B/val) holding the same file names."
)
_UNPAIRED_LAYOUT = "unpaired_folder expects root/trainA/ and root/trainB/, optionally root/testA/ and root/testB/."


def _images_under(folder: Path) -> list[Path]:
    """Every image file under ``folder``, recursively, hidden folders skipped, sorted."""
    found: list[Path] = []
    for parent, subdirs, files in os.walk(folder):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        found += [Path(parent) / f for f in files if _is_image(f)]
    return sorted(found)


def _transform(resolution: int, channels: int) -> transforms.Compose:
    """PIL image -> (C, R, R) in [-1, 1], squashed to a square (no crop, so A and B stay aligned)."""
    return transforms.Compose([
        transforms.Resize((resolution, resolution)),
        transforms.ToTensor(),
        transforms.Normalize([0.5] * channels, [0.5] * channels),
    ])


def _mode(key: str, channels: object) -> str:
    return "L" if check_channels(channels, key) == 1 else "RGB"


def _hold_out(items: list, what: str) -> tuple[list, list]:
    """No test folder: the last 10% (at least 1) of the sorted items are held out; (train, held-out)."""
    n_out = max(1, len(items) // 10)
    if len(items) - n_out < 1:
        raise DataError(f"{what} holds only {len(items)} item(s) and there is no test folder: with no test "
                        f"split the last 10% are held out, so at least 2 are needed. Add more images or a test split.")
    return items[:-n_out], items[-n_out:]


# ---------------------------------------------------------------------------- paired


class _Pairs(SkipUnreadable, Dataset):
    """``(a, b, -1)``; each pair is one side-by-side file ``(file, None)`` or two files ``(file_a, file_b)``."""

    def __init__(self, root: Path, pairs: list[tuple[Path, Path | None]], resolution: int, mode_a: str, mode_b: str,
                 swap: bool) -> None:
        self.root, self.pairs, self.mode_a, self.mode_b, self.swap = root, pairs, mode_a, mode_b, swap
        self.transform_a = _transform(resolution, len(mode_a))
        self.transform_b = _transform(resolution, len(mode_b))

    def __len__(self) -> int:
        return len(self.pairs)

    def read(self, index: int):
        first, second = self.pairs[index]
        if second is None:  # side by side: split first, then each half is resized
            img = load_image(first, "RGB")
            half, h = img.width // 2, img.height  # an odd width loses its last column
            if half < 1:
                raise UnreadableFile(first, "1 pixel wide: a side-by-side image needs width >= 2 (left half A, "
                                            "right half B)")
            left, right = img.crop((0, 0, half, h)), img.crop((half, 0, 2 * half, h))
        else:
            left, right = load_image(first, "RGB"), load_image(second, "RGB")
        a, b = (right, left) if self.swap else (left, right)
        return self.transform_a(a.convert(self.mode_a)), self.transform_b(b.convert(self.mode_b)), -1


def _matched(root: Path, split: str) -> list[tuple[Path, Path | None]]:
    """A/<split> and B/<split> files paired by relative name; any file without a partner is an error."""
    names = {side: {p.relative_to(root / side / split).as_posix() for p in _images_under(root / side / split)}
             for side in ("A", "B")}
    lonely = sorted([(n, "A", "B") for n in names["A"] - names["B"]] + [(n, "B", "A") for n in names["B"] - names["A"]])
    if lonely:
        name, has, lacks = lonely[0]
        raise DataError(f"paired_folder: {has}/{split}/{name} has no partner in {lacks}/{split} "
                        f"({len(lonely)} unmatched file(s) in all under dataset.root={root}). {_PAIRED_LAYOUTS}")
    return [(root / "A" / split / n, root / "B" / split / n) for n in sorted(names["A"])]


def paired_folder(root: str = "data/paired", resolution: int = 256, channels: int = 3, channels_b: int | None = None,
                  direction: str = "AtoB", split: str = "train", test_max: int = 500) -> GanData:
    """Aligned (A, B) image pairs for pix2pix; the layout is detected (see ``_PAIRED_LAYOUTS``).

    Trains on ``split``; the held-out split is ``test/`` or else ``val/``, and if neither exists
    the last 10% of the sorted ``split`` pairs (at least 1) are held out and not trained on.
    ``direction="BtoA"`` swaps A and B. ``channels`` is A's, ``channels_b`` B's (default: the same).
    """
    check_int("resolution", resolution, 1)
    check_int("test_max", test_max, 1)
    mode_a = _mode("channels", channels)
    mode_b = _mode("channels_b", channels if channels_b is None else channels_b)
    if direction not in ("AtoB", "BtoA"):
        raise ConfigError(f"dataset.direction must be AtoB (left/A -> right/B) or BtoA (the reverse), got {direction!r}.")
    path = resolve_root(root)
    if not path.is_dir():
        raise DataError(f"Paired image folder {path} (dataset.root) does not exist or is not a folder. "
                        f"{_PAIRED_LAYOUTS} Nothing is downloaded at run time.")
    separate = (path / "A").is_dir() and (path / "B").is_dir()
    base = path / "A" if separate else path
    if not isinstance(split, str) or not split or not (base / split).is_dir():
        where = f"{path}/A/{split}/ and {path}/B/{split}/" if separate else f"{path}/{split}/"
        raise DataError(f"paired_folder: no training split {where} (dataset.split={split!r} under "
                        f"dataset.root={path}). {_PAIRED_LAYOUTS}")

    def pairs(name: str) -> list[tuple[Path, Path | None]]:
        found = _matched(path, name) if separate else [(f, None) for f in _images_under(path / name)]
        if not found:
            where = f"{path}/A/{name}/ and {path}/B/{name}/" if separate else f"{path}/{name}/"
            raise DataError(f"paired_folder: no images in {where} (dataset.root={path}); accepted extensions: "
                            f"{_EXTS}. {_PAIRED_LAYOUTS}")
        return found

    train = pairs(split)
    held_name = next((s for s in ("test", "val") if s != split and (base / s).is_dir()), None)
    if held_name is None:
        train, held = _hold_out(train, f"{path}/{split}")
    else:
        held = pairs(held_name)
    test_ds = _Pairs(path, held, resolution, mode_a, mode_b, swap=direction == "BtoA")
    items = test_ds.readable(test_max)
    inputs, targets = (torch.stack([item[k] for item in items]) for k in (0, 1))
    test = TranslationTest(inputs=inputs, domain_b=targets, targets=targets, labels=None, domain_a=inputs)
    train_ds = _Pairs(path, train, resolution, mode_a, mode_b, swap=direction == "BtoA")
    train_ds[0]  # here, in the main process: one clear error if no pair at all can be read
    files = [f for pair in train + held for f in pair if f is not None]
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


class _Unpaired(Dataset):
    """``(a, b, -1, -1)``: A[i % len A] with B[perm[i] % len B], perm a fixed permutation (seed 0)."""

    def __init__(self, a: _Images, b: _Images) -> None:
        self.a, self.b = a, b
        self.perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(0)).tolist()

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, index: int):
        return self.a[index % len(self.a)], self.b[self.perm[index] % len(self.b)], -1, -1


def unpaired_folder(root: str = "data/unpaired", resolution: int = 256, channels: int = 3,
                    channels_b: int | None = None, test_max: int = 500) -> GanData:
    """Two unrelated image domains for CycleGAN: ``root/trainA``, ``root/trainB`` (searched recursively).

    Held out: ``testA`` / ``testB`` where they hold images, else the last 10% (at least 1) of
    that domain's sorted training images, which are then not trained on.
    """
    check_int("resolution", resolution, 1)
    check_int("test_max", test_max, 1)
    mode_a = _mode("channels", channels)
    mode_b = _mode("channels_b", channels if channels_b is None else channels_b)
    path = resolve_root(root)
    if not path.is_dir():
        raise DataError(f"Unpaired image folder {path} (dataset.root) does not exist or is not a folder. "
                        f"{_UNPAIRED_LAYOUT} Nothing is downloaded at run time.")
    domains, files = {}, []
    for side, mode in (("A", mode_a), ("B", mode_b)):
        train = _images_under(path / f"train{side}")
        if not train:
            raise DataError(f"unpaired_folder: no images in {path / f'train{side}'} (missing or empty; "
                            f"dataset.root={path}). Accepted extensions: {_EXTS}. {_UNPAIRED_LAYOUT}")
        held = _images_under(path / f"test{side}")
        if not held:
            train, held = _hold_out(train, str(path / f"train{side}"))
        train_ds = _Images(path / f"train{side}", train, resolution, mode)
        train_ds[0]  # here, in the main process: one clear error if nothing at all can be read
        held_ds = _Images(held[0].parent, held, resolution, mode)
        domains[side] = (train_ds, torch.stack(held_ds.readable(test_max)))
        files += train + held
    (train_a, held_a), (train_b, held_b) = domains["A"], domains["B"]
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
