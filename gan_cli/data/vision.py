"""Image datasets read from a local folder with torchvision. MNIST, Fashion-MNIST and CIFAR-10 are
downloaded into that folder only when asked to (``download=True``, i.e. ``dataset.download=true``).

Items are streamed from disk (not materialised): ``x`` is ``(C, R, R)`` in [-1, 1] and ``y``
an int class index (-1 for an unlabelled image folder). An unreadable file in an image folder is
skipped with a warning (gan_cli/data/unreadable.py).
"""
from __future__ import annotations

import http.client
import os
import pickle
import socket
import tarfile
from functools import partial
from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset
from torchvision import datasets, transforms

from gan_cli.data.base import GanData
from gan_cli.data.embedded import check_channels, check_int
from gan_cli.data.fingerprint import files_fingerprint
from gan_cli.data.formats import IMAGE_EXTENSIONS
from gan_cli.data.unreadable import SkipUnreadable, load_image
from gan_cli.errors import DataError
from gan_cli.fetch import READ_TIMEOUT

_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
_NO_DOWNLOAD = "Nothing is downloaded at run time"
# What torchvision's readers raise on missing, truncated or corrupt files.
_READ_ERRORS = (RuntimeError, OSError, ValueError, TypeError, AssertionError, EOFError, KeyError)


def _cause(err: Exception) -> str:
    """torchvision's own message, unless it is only its 'not found, use download=True' line."""
    text = str(err)
    if "download=True" in text:
        return ""
    return f" (reading failed with {type(err).__name__}{': ' + text if text else ''})"


def _download_advice(download: bool, folder: Path) -> str:
    if download:
        return (f"dataset.download=true fetches only missing files: delete the unreadable ones in {folder}/ "
                f"to have them fetched again")
    return f"Nothing is downloaded unless asked: dataset.download=true fetches them into {folder}/"


def _download(cls: type, path: Path, name: str, by_hand: str) -> None:
    """torchvision's own download of `cls` into `path` (it skips files already there), failing as one DataError."""
    ds = cls.__new__(cls)  # download() needs only `root`: __init__ would also read the whole dataset
    ds.root = str(path)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(READ_TIMEOUT)  # torchvision sets none: a stalled server would hang for ever
    try:
        ds.download()
    except (OSError, RuntimeError, ValueError, EOFError, http.client.HTTPException, tarfile.TarError) as err:
        detail = " ".join(str(err).split()) or type(err).__name__  # torchvision's lines, as one
        raise DataError(
            f"Downloading {name} into dataset.root={path} (dataset.download=true) failed: {detail}. Check the "
            f"network (and HTTPS_PROXY behind a proxy) and run again, or {by_hand}. Files that arrived whole (md5 "
            f"checked) are kept, so a new try fetches only the rest."
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def resolve_root(root: str | os.PathLike) -> Path:
    """Expand ``~`` and ``$VARS``; a relative path is taken from the current working directory."""
    return Path(os.path.expandvars(os.path.expanduser(os.fspath(root)))).resolve()


def image_transform(resolution: int, channels: int) -> Callable:
    """PIL image -> ``(C, R, R)`` float tensor in [-1, 1]: resize the short side, centre-crop, normalise."""
    return transforms.Compose(
        [
            transforms.Resize(resolution),
            transforms.CenterCrop(resolution),
            transforms.ToTensor(),  # [0, 1]
            transforms.Normalize([0.5] * channels, [0.5] * channels),  # [-1, 1]
        ]
    )


# ---------------------------------------------------------------------------- MNIST / Fashion-MNIST / CIFAR-10


def _mnist_like(cls: type, name: str, folder: str, root, resolution: int, train: bool, download: bool) -> GanData:
    check_int("resolution", resolution, 1)
    path = resolve_root(root)
    raw = path / folder / "raw"
    if download:
        gz = ", ".join(f for f, _ in cls.resources)
        _download(cls, path, name, f"put {gz} (from {cls.mirrors[0]}) in {raw}/ yourself: download=true then "
                                   f"only unpacks them")
    try:
        ds = cls(str(path), train=train, transform=image_transform(resolution, 1), target_transform=int, download=False)
    except _READ_ERRORS as err:
        hint = ""
        if (path / "raw" / _MNIST_FILES[0]).exists():
            hint = f" The files are in {path}/raw, so set dataset.root={path.parent} instead."
        elif any((raw / (f + ".gz")).exists() for f in _MNIST_FILES):
            hint = f" Found .gz archives in {raw}: decompress them there (gunzip {raw}/*.gz)."
        raise DataError(
            f"{name} was not found (or could not be read) under dataset.root={path}. "
            f"Expected the four uncompressed idx files {', '.join(_MNIST_FILES)} in {raw}/ "
            f"(both train and t10k are required, whatever dataset.train is). "
            f"{_download_advice(download, raw)}; or fetch and gunzip them beforehand, then set dataset.root=/path "
            f"to the folder that contains {folder}/.{hint}{_cause(err)}"
        ) from err
    files = [raw / f for f in _MNIST_FILES]
    return GanData(ds, kind="image", shape=(1, resolution, resolution), num_classes=10, name=name.lower(),
                   fingerprint=files_fingerprint(files, path, dataset=name, resolution=resolution, train=train))


def mnist(root: str = "data/mnist", resolution: int = 32, train: bool = True, download: bool = False) -> GanData:
    """MNIST handwritten digits (28x28 gray, 10 classes) from ``<root>/MNIST/raw/``; ``download``: fetch if missing."""
    return _mnist_like(datasets.MNIST, "MNIST", "MNIST", root, resolution, train, download)


def fashion_mnist(
    root: str = "data/fashion_mnist", resolution: int = 32, train: bool = True, download: bool = False
) -> GanData:
    """Fashion-MNIST clothing images (28x28 gray, 10 classes) from ``<root>/FashionMNIST/raw/``; ``download``:
    fetch if missing."""
    return _mnist_like(datasets.FashionMNIST, "Fashion-MNIST", "FashionMNIST", root, resolution, train, download)


def cifar10(root: str = "data/cifar10", resolution: int = 32, train: bool = True, download: bool = False) -> GanData:
    """CIFAR-10 (32x32 RGB, 10 classes) from ``<root>/cifar-10-batches-py/``; ``download``: fetch if missing."""
    check_int("resolution", resolution, 1)
    path = resolve_root(root)
    if download:
        cls = datasets.CIFAR10
        _download(cls, path, "CIFAR-10", f"put {cls.filename} (from {cls.url}) in {path}/ yourself: "
                                         f"download=true then only unpacks it")
    try:
        ds = datasets.CIFAR10(
            str(path), train=train, transform=image_transform(resolution, 3), target_transform=int, download=False
        )
    except _READ_ERRORS + (pickle.UnpicklingError,) as err:
        folder = path / datasets.CIFAR10.base_folder
        hint = ""
        if (path / "data_batch_1").exists():
            hint = f" The batch files are directly in {path}, so set dataset.root={path.parent} instead."
        raise DataError(
            f"CIFAR-10 was not found (or a file failed its checksum) under dataset.root={path}. "
            f"Expected the Python-version batches {', '.join(_CIFAR10_FILES)} in {folder}/, "
            f"as unpacked from cifar-10-python.tar.gz (tar xzf cifar-10-python.tar.gz -C {path}). "
            f"{_download_advice(download, path)}; or set dataset.root=/path to the folder that contains "
            f"cifar-10-batches-py/.{hint}{_cause(err)}"
        ) from err
    folder = path / datasets.CIFAR10.base_folder
    return GanData(ds, kind="image", shape=(3, resolution, resolution), num_classes=10, name="cifar10",
                   fingerprint=files_fingerprint([folder / f for f in _CIFAR10_FILES], path, dataset="cifar10",
                                                 resolution=resolution, train=train))


# ---------------------------------------------------------------------------- image folder


def _is_image(path: str | os.PathLike) -> bool:
    name = os.path.basename(path)
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _visible_subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


class _FlatImages(SkipUnreadable, Dataset):
    """Every image file under a folder, recursively, with label -1."""

    def __init__(self, root: Path, transform: Callable, mode: str) -> None:
        self.root = root
        self.files: list[Path] = []
        for folder, subdirs, files in os.walk(root):
            subdirs[:] = [d for d in subdirs if not d.startswith(".")]  # skip hidden folders
            self.files += [Path(folder) / f for f in files if _is_image(f)]
        self.files.sort()
        self.transform = transform
        self.mode = mode

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int):
        return self.transform(load_image(self.files[index], self.mode)), -1


class _ClassFolders(SkipUnreadable, datasets.ImageFolder):
    """torchvision's ImageFolder, ignoring hidden folders such as ``.ipynb_checkpoints``."""

    def find_classes(self, directory):
        classes = [p.name for p in _visible_subdirs(Path(directory))]
        return classes, {c: i for i, c in enumerate(classes)}

    def read(self, index: int):
        return datasets.ImageFolder.__getitem__(self, index)


def image_folder(root: str = "data/images", resolution: int = 64, channels: int = 3) -> GanData:
    """Every image under ``root`` (recursively), resized and centre-cropped to ``resolution``.

    If ``root`` holds only class subfolders (no images directly in it), each subfolder is a
    class (torchvision ImageFolder layout); otherwise the images are unlabelled (y = -1).
    """
    check_int("resolution", resolution, 1)
    channels = check_channels(channels)
    mode = "L" if channels == 1 else "RGB"
    path = resolve_root(root)
    if not path.is_dir():
        raise DataError(
            f"Image folder {path} (dataset.root) does not exist or is not a folder. "
            f"Set dataset.root=/path to a folder of images ({', '.join(IMAGE_EXTENSIONS)}), "
            f"optionally one subfolder per class. {_NO_DOWNLOAD}."
        )
    transform = image_transform(resolution, channels)
    top_images = [p for p in path.iterdir() if p.is_file() and _is_image(p)]
    if _visible_subdirs(path) and not top_images:
        ds: Dataset = _ClassFolders(
            str(path),
            transform=transform,
            loader=partial(load_image, mode=mode),  # picklable, for DataLoader workers
            is_valid_file=_is_image,
            allow_empty=True,
        )
        num_classes = len(ds.classes)
    else:
        ds = _FlatImages(path, transform, mode)
        num_classes = 0
    files = ds.files if isinstance(ds, _FlatImages) else [file for file, _ in ds.samples]
    if len(ds) == 0:
        raise DataError(
            f"No images found under {path} (dataset.root), searched recursively. "
            f"Accepted extensions: {', '.join(IMAGE_EXTENSIONS)} (any case). "
            f"Set dataset.root=/path to a folder that holds such files. {_NO_DOWNLOAD}."
        )
    ds[0]  # here, in the main process: one clear error if nothing at all can be read
    shape = (channels, resolution, resolution)
    return GanData(ds, kind="image", shape=shape, num_classes=num_classes, name=path.name or "image_folder",
                   fingerprint=files_fingerprint(files, path, dataset="image_folder", resolution=resolution,
                                                 channels=channels))
