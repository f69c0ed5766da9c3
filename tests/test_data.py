"""Dataset builders: shapes, ranges, labels, determinism, missing-data errors and the YAML configs.

Everything runs offline: the MNIST and image-folder tests write tiny real files to tmp_path and
read them back through torchvision.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import inspect
import socket
import struct
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import hydra.utils
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets

from gan_cli.data import embedded, vision
from gan_cli.data.base import GanData
from gan_cli.data.selection import build_dataset
from gan_cli.errors import ConfigError, DataError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "dataset"
EMBEDDED_OVERRIDES = {
    "digits": {"resolution": 16},
    "ring8": {"num_samples": 256},
    "grid25": {"num_samples": 256},
    "fake": {"num_samples": 8, "resolution": 16},
    "digits_edges": {"resolution": 16},
    "digits_inpaint": {"resolution": 16},
    "digits_unpaired": {"resolution": 16},
}
VISION = {"mnist", "fashion_mnist", "cifar10", "image_folder", "paired_folder", "unpaired_folder"}


def tensors(data: GanData):
    assert data.in_memory
    return data.dataset.tensors


# ---------------------------------------------------------------------------- digits


@pytest.mark.parametrize("resolution", [16, 32])
def test_digits_shape_range_labels(resolution):
    data = embedded.digits(resolution=resolution)
    x, y = tensors(data)
    assert len(data) == 1797 and data.name == "digits" and data.kind == "image"
    assert data.shape == (1, resolution, resolution) and data.num_classes == 10
    assert x.shape == (1797, 1, resolution, resolution) and x.dtype == torch.float32
    assert y.shape == (1797,) and y.dtype == torch.int64
    assert x.min() == -1.0 and x.max() == 1.0
    assert set(y.tolist()) == set(range(10))


def test_digits_native_resolution_maps_0_16_to_minus1_1():
    from sklearn.datasets import load_digits

    x, _ = tensors(embedded.digits(resolution=8))
    raw = torch.as_tensor(load_digits().images, dtype=torch.float32)
    torch.testing.assert_close(x[:, 0], raw / 8 - 1)


def test_digits_rgb_repeats_gray():
    x, _ = tensors(embedded.digits(resolution=16, channels=3))
    assert x.shape == (1797, 3, 16, 16)
    assert torch.equal(x[:, 0], x[:, 2])


@pytest.mark.parametrize("kwargs", [{"resolution": 4}, {"resolution": 0}, {"resolution": 16.5}, {"channels": 2}])
def test_digits_bad_config(kwargs):
    key = next(iter(kwargs))
    with pytest.raises(ConfigError, match=f"dataset.{key}"):
        embedded.digits(**kwargs)


# ---------------------------------------------------------------------------- 2D mixtures


@pytest.mark.parametrize("name, k, std", [("ring8", 8, 0.01), ("grid25", 25, 0.05)])
def test_mixture_points_near_modes(name, k, std):
    data = getattr(embedded, name)(num_samples=5000, seed=3)
    x, y = tensors(data)
    centres, mode_std = embedded.modes(name)
    assert centres.shape == (k, 2) and mode_std == std
    assert data.kind == "points" and data.shape == (2,) and data.num_classes == k and data.name == name
    assert x.shape == (5000, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    dist = torch.cdist(x, centres)  # (N, K)
    nearest = dist.argmin(dim=1)
    assert (dist.min(dim=1).values < 5 * std).all()
    assert torch.equal(nearest, y)  # each label is the mode the point came from
    assert torch.bincount(y, minlength=k).min() > 0  # every mode is used


def test_mixture_geometry():
    ring, _ = embedded.modes("ring8")
    torch.testing.assert_close(ring.norm(dim=1), torch.ones(8))
    torch.testing.assert_close(ring[2], torch.tensor([0.0, 1.0]), atol=1e-6, rtol=0)
    grid, _ = embedded.modes("grid25")
    assert sorted(set(grid[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert len({tuple(c) for c in grid.tolist()}) == 25
    with pytest.raises(ConfigError, match="ring8"):
        embedded.modes("swiss_roll")


def test_mixture_deterministic():
    a, b, c = (embedded.grid25(num_samples=500, seed=s) for s in (0, 0, 1))
    assert torch.equal(tensors(a)[0], tensors(b)[0]) and torch.equal(tensors(a)[1], tensors(b)[1])
    assert not torch.equal(tensors(a)[0], tensors(c)[0])


# ---------------------------------------------------------------------------- fake


def test_fake_shapes_range_in_memory():
    data = embedded.fake(resolution=16, channels=3, num_samples=12, num_classes=4)
    x, y = tensors(data)
    assert data.kind == "image" and data.shape == (3, 16, 16) and data.num_classes == 4 and len(data) == 12
    assert x.shape == (12, 3, 16, 16) and x.dtype == torch.float32
    assert x.min() >= -1.0 and x.max() <= 1.0 and x.min() < 0 < x.max()
    assert y.dtype == torch.int64 and y.min() >= 0 and y.max() < 4
    gray = embedded.fake(resolution=8, channels=1, num_samples=2)
    assert tensors(gray)[0].shape == (2, 1, 8, 8)
    again = embedded.fake(resolution=16, channels=3, num_samples=12, num_classes=4)
    assert torch.equal(tensors(again)[0], x)


# ---------------------------------------------------------------------------- MNIST-style idx files


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Write images (N, 28, 28) uint8 and labels (N,) uint8 in the big-endian idx-ubyte format."""
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x0803, n, h, w) + images.tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x0801, n) + labels.tobytes())


def fake_mnist(root: Path, folder: str = "MNIST", n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    write_idx(root / folder / "raw", "train", images, labels)
    write_idx(root / folder / "raw", "t10k", images[:2], labels[:2])
    return images, labels


@pytest.mark.parametrize("builder, folder", [(vision.mnist, "MNIST"), (vision.fashion_mnist, "FashionMNIST")])
def test_mnist_reads_idx_files(tmp_path, builder, folder):
    images, labels = fake_mnist(tmp_path, folder)
    data = builder(root=str(tmp_path), resolution=28)
    assert not data.in_memory and data.kind == "image" and data.shape == (1, 28, 28) and data.num_classes == 10
    assert len(data) == 5
    x, y = data.dataset[3]
    assert isinstance(y, int) and y == labels[3]
    torch.testing.assert_close(x[0], torch.from_numpy(images[3]).float() / 255 * 2 - 1)
    assert len(builder(root=str(tmp_path), train=False)) == 2

    xb, yb = next(iter(DataLoader(builder(root=str(tmp_path), resolution=32).dataset, batch_size=4)))
    assert xb.shape == (4, 1, 32, 32) and yb.dtype == torch.int64
    assert xb.min() >= -1 and xb.max() <= 1


def test_mnist_root_relative_and_env(tmp_path, monkeypatch):
    fake_mnist(tmp_path / "sub")
    monkeypatch.chdir(tmp_path)
    assert len(vision.mnist(root="sub")) == 5
    monkeypatch.setenv("GAN_TEST_ROOT", str(tmp_path))
    assert len(vision.mnist(root="$GAN_TEST_ROOT/sub")) == 5


def test_mnist_missing(tmp_path):
    with pytest.raises(DataError) as err:
        vision.mnist(root=str(tmp_path))
    msg = str(err.value)
    assert str(tmp_path.resolve()) in msg and "dataset.root" in msg
    assert "MNIST/raw" in msg and "train-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg
    assert "download=True" not in msg


def test_mnist_root_one_level_too_deep_hints_parent(tmp_path):
    fake_mnist(tmp_path)
    with pytest.raises(DataError, match=f"dataset.root={tmp_path.resolve()}"):
        vision.mnist(root=str(tmp_path / "MNIST"))


def test_mnist_corrupt_file(tmp_path):
    fake_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"junk")
    with pytest.raises(DataError, match="dataset.root"):
        vision.mnist(root=str(tmp_path))


def test_cifar10_missing(tmp_path):
    with pytest.raises(DataError) as err:
        vision.cifar10(root=str(tmp_path))
    msg = str(err.value)
    assert str(tmp_path.resolve()) in msg and "dataset.root" in msg
    assert "cifar-10-batches-py" in msg and "data_batch_1" in msg and "batches.meta" in msg


# ---------------------------------------------------------------------------- image folder


def write_png(path: Path, size=(40, 30), color=(255, 0, 0), fmt=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=fmt)


def test_image_folder_flat_recursive(tmp_path):
    write_png(tmp_path / "a.png")
    write_png(tmp_path / "nested" / "b.JPG", color=(0, 0, 255), fmt="JPEG")
    write_png(tmp_path / ".hidden" / "c.png")
    (tmp_path / "notes.txt").write_text("not an image")
    data = vision.image_folder(root=str(tmp_path), resolution=16)
    assert len(data) == 2 and data.num_classes == 0 and data.shape == (3, 16, 16) and not data.in_memory
    x, y = data.dataset[0]  # a.png: pure red
    assert y == -1 and x.shape == (3, 16, 16)
    torch.testing.assert_close(x[:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    gray = vision.image_folder(root=str(tmp_path), resolution=8, channels=1)
    assert gray.dataset[1][0].shape == (1, 8, 8)


def test_image_folder_class_subfolders(tmp_path):
    write_png(tmp_path / "cat" / "1.png")
    write_png(tmp_path / "cat" / "deep" / "2.png")
    write_png(tmp_path / "dog" / "3.bmp", size=(20, 50), color=(0, 255, 0))
    data = vision.image_folder(root=str(tmp_path), resolution=12)
    assert data.num_classes == 2 and len(data) == 3
    xb, yb = next(iter(DataLoader(data.dataset, batch_size=3)))
    assert xb.shape == (3, 3, 12, 12) and xb.min() >= -1 and xb.max() <= 1
    assert yb.dtype == torch.int64 and yb.tolist() == [0, 0, 1]


def test_image_folder_empty_or_missing(tmp_path):
    (tmp_path / "empty_class").mkdir()
    (tmp_path / "readme.txt").write_text("x")
    for root in (tmp_path, tmp_path / "empty_class"):
        with pytest.raises(DataError, match=r"\.png") as err:
            vision.image_folder(root=str(root))
        assert str(root.resolve()) in str(err.value)
    with pytest.raises(DataError, match="does not exist"):
        vision.image_folder(root=str(tmp_path / "nope"))


# ---------------------------------------------------------------------------- YAML configs


PREPARED = {"prepared"}  # written by gan prepare: its resolution was fixed then


def test_every_builder_has_a_config():
    assert {p.stem for p in CONFIG_DIR.glob("*.yaml")} == set(EMBEDDED_OVERRIDES) | VISION | PREPARED


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_config_keys_match_builder(path):
    assert path.read_text().startswith("# ")
    cfg = OmegaConf.load(path)
    fn = hydra.utils.get_method(cfg._target_)
    keys = set(cfg) - {"_target_", "subset", "classes"}  # those two: gan_cli.data.selection's, for every dataset
    assert keys == set(inspect.signature(fn).parameters)
    assert ("resolution" in keys) == (path.stem not in {"ring8", "grid25"})
    if path.stem in PREPARED:  # fixed by gan prepare: the key only checks a recipe's value against it
        assert cfg.resolution is None
    assert ("root" in keys) == (path.stem in VISION)


@pytest.mark.parametrize("name", sorted(EMBEDDED_OVERRIDES))
def test_embedded_config_instantiates(name):
    cfg = OmegaConf.merge(OmegaConf.load(CONFIG_DIR / f"{name}.yaml"), EMBEDDED_OVERRIDES[name])
    data = build_dataset(cfg)  # the builder, then dataset.subset / classes
    assert isinstance(data, GanData) and data.in_memory and len(data) > 0


@pytest.mark.parametrize("name", sorted(VISION))
def test_vision_config_reports_missing_root(tmp_path, name):
    cfg = OmegaConf.load(CONFIG_DIR / f"{name}.yaml")
    cfg.root = str(tmp_path / "absent")
    with pytest.raises(DataError, match="dataset.root"):
        build_dataset(cfg)


# ---------------------------------------------------------------------------- dataset.download=true (127.0.0.1 only)


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def no_proxy(monkeypatch):
    """A proxy set in the environment must not take torchvision's requests to 127.0.0.1."""
    for key in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(key, "127.0.0.1,localhost")


@pytest.fixture
def mirror(tmp_path, no_proxy):
    """An HTTP server on 127.0.0.1 serving the folder it returns, and its base URL."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietFiles, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"  # closed on return: connecting is refused


@pytest.mark.parametrize("builder", [vision.mnist, vision.fashion_mnist, vision.cifar10])
def test_missing_files_name_the_download_flag(tmp_path, builder):
    with pytest.raises(DataError, match="dataset.download=true"):
        builder(root=str(tmp_path))


def test_mnist_download_from_a_mirror(tmp_path, mirror, monkeypatch):
    folder, url = mirror
    images, labels = fake_mnist(tmp_path / "src")
    resources = []
    for file in sorted((tmp_path / "src" / "MNIST" / "raw").iterdir()):
        (folder / f"{file.name}.gz").write_bytes(gzip.compress(file.read_bytes()))
        resources.append((f"{file.name}.gz", hashlib.md5((folder / f"{file.name}.gz").read_bytes()).hexdigest()))
    monkeypatch.setattr(datasets.MNIST, "mirrors", [closed_url(), url])  # the first mirror is down
    monkeypatch.setattr(datasets.MNIST, "resources", resources)
    data = vision.mnist(root=str(tmp_path / "root"), resolution=28, download=True)
    assert len(data) == 5 and data.dataset[3][1] == labels[3]
    assert (tmp_path / "root" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file()
    monkeypatch.setattr(datasets.MNIST, "mirrors", [closed_url()])  # files there: no network needed
    assert len(vision.mnist(root=str(tmp_path / "root"), download=True)) == 5
    assert socket.getdefaulttimeout() is None  # the download's timeout is put back


@pytest.mark.parametrize("builder, cls, name", [(vision.mnist, datasets.MNIST, "MNIST"),
                                                (vision.fashion_mnist, datasets.FashionMNIST, "Fashion-MNIST"),
                                                (vision.cifar10, datasets.CIFAR10, "CIFAR-10")])
def test_download_unreachable_is_one_clear_error(tmp_path, monkeypatch, no_proxy, builder, cls, name):
    url = closed_url()
    if cls is datasets.CIFAR10:
        monkeypatch.setattr(cls, "url", url + cls.filename)
    else:
        monkeypatch.setattr(cls, "mirrors", [url])
    with pytest.raises(DataError) as err:
        builder(root=str(tmp_path), download=True)
    msg = str(err.value)
    assert "\n" not in msg and f"Downloading {name} into dataset.root={tmp_path.resolve()}" in msg
    assert "dataset.download=true" in msg and url in msg and "refused" in msg
    assert socket.getdefaulttimeout() is None
