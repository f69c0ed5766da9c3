"""Translation folders (pix2pix paired, CycleGAN unpaired) and the user's images for `gan sample input=`.

Tiny real PNGs are written to tmp_path and read back at resolution 16.
"""
from __future__ import annotations

import inspect
import pickle
from pathlib import Path

import hydra.utils
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader

from gan_cli.data.translation_folders import load_user_images, paired_folder, save_user_images, unpaired_folder
from gan_cli.errors import ConfigError, DataError

R = 16
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "dataset"


def png(path: Path, size=(20, 12), color=(0, 0, 0), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def side_by_side(path: Path, width: int = 24, height: int = 12) -> Path:
    """Left half black (A), right half white (B)."""
    img = Image.new("RGB", (width, height), (0, 0, 0))
    img.paste((255, 255, 255), (width // 2, 0, width, height))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def separate(root: Path, split: str, names) -> None:
    for n in names:
        png(root / "A" / split / n, color=(0, 0, 0))
        png(root / "B" / split / n, color=(255, 255, 255))


# ---------------------------------------------------------------------------- paired


def test_side_by_side_values_and_direction(tmp_path):
    for i in range(3):
        side_by_side(tmp_path / "train" / f"{i}.png")
    side_by_side(tmp_path / "test" / "t.png", width=25)  # odd width: the last column is dropped
    data = paired_folder(root=str(tmp_path), resolution=R)
    assert data.kind == "paired" and data.translation and not data.in_memory and len(data) == 3
    assert data.shape == data.input_shape == (3, R, R) and data.num_classes == 0 and data.name == tmp_path.name
    a, b, y = data.dataset[0]
    assert a.shape == b.shape == (3, R, R) and y == -1
    assert torch.allclose(a, torch.full_like(a, -1)) and torch.allclose(b, torch.full_like(b, 1))
    t = data.test
    assert t.inputs.shape == (1, 3, R, R) and t.targets is t.domain_b and t.domain_a is t.inputs and t.labels is None
    assert torch.allclose(t.inputs, torch.tensor(-1.0)) and torch.allclose(t.targets, torch.tensor(1.0))
    a, b, _ = paired_folder(root=str(tmp_path), resolution=R, direction="BtoA").dataset[0]
    assert torch.allclose(a, torch.tensor(1.0)) and torch.allclose(b, torch.tensor(-1.0))


def test_paired_dataloader_and_pickle(tmp_path):
    for i in range(4):
        side_by_side(tmp_path / "train" / f"{i}.png")
    ds = paired_folder(root=str(tmp_path), resolution=R).dataset
    batch = next(iter(DataLoader(ds, batch_size=2, num_workers=0)))
    assert len(batch) == 3 and all(isinstance(x, torch.Tensor) for x in batch)
    assert batch[0].shape == batch[1].shape == (2, 3, R, R) and batch[2].tolist() == [-1, -1]
    assert len(pickle.loads(pickle.dumps(ds))) == len(ds)  # picklable for DataLoader workers


def test_separate_folders_layout_and_channels(tmp_path):
    separate(tmp_path, "train", ["0.png", "1.png", "sub/2.png"])
    separate(tmp_path, "test", ["9.png"])
    data = paired_folder(root=str(tmp_path), resolution=R, channels=1)
    assert len(data) == 3 and data.input_shape == data.shape == (1, R, R)
    a, b, y = data.dataset[2]
    assert a.shape == b.shape == (1, R, R) and y == -1 and a.max() == -1 and b.min() == 1
    mixed = paired_folder(root=str(tmp_path), resolution=R, channels=1, channels_b=3)
    assert mixed.input_shape == (1, R, R) and mixed.shape == (3, R, R)
    assert mixed.test.inputs.shape == (1, 1, R, R) and mixed.test.targets.shape == (1, 3, R, R)


def test_held_out_from_val_then_last_ten_percent(tmp_path):
    for i in range(20):
        side_by_side(tmp_path / "train" / f"{i:02d}.png")
    side_by_side(tmp_path / "val" / "v0.png")
    side_by_side(tmp_path / "val" / "v1.png")
    data = paired_folder(root=str(tmp_path), resolution=R, test_max=1)
    assert len(data) == 20 and len(data.test.inputs) == 1  # val, capped by test_max
    for f in (tmp_path / "val").iterdir():
        f.unlink()
    (tmp_path / "val").rmdir()
    data = paired_folder(root=str(tmp_path), resolution=R)
    assert len(data) == 18 and len(data.test.inputs) == 2
    assert [p[0].name for p in data.dataset.pairs][-1] == "17.png"


def test_separate_folders_ten_percent_fallback(tmp_path):
    separate(tmp_path, "train", [f"{i}.png" for i in range(5)])
    data = paired_folder(root=str(tmp_path), resolution=R)
    assert len(data) == 4 and len(data.test.inputs) == 1 and len(data.test.targets) == 1


def test_mismatch_names_first_unmatched_file(tmp_path):
    separate(tmp_path, "train", ["0001.png", "0003.png"])
    png(tmp_path / "A" / "train" / "0007.png")
    png(tmp_path / "B" / "train" / "0005.png")
    with pytest.raises(DataError, match=r"B/train/0005.png has no partner in A/train \(2 unmatched"):
        paired_folder(root=str(tmp_path), resolution=R)


@pytest.mark.parametrize("kwargs, key, error", [
    ({"direction": "AB"}, "dataset.direction", ConfigError),
    ({"channels": 2}, "dataset.channels", ConfigError),
    ({"channels_b": 4}, "dataset.channels_b", ConfigError),
    ({"split": "training"}, "dataset.split", DataError),
])
def test_paired_bad_config(tmp_path, kwargs, key, error):
    side_by_side(tmp_path / "train" / "0.png")
    with pytest.raises(error, match=key):
        paired_folder(root=str(tmp_path), resolution=R, **kwargs)


def test_paired_missing_or_empty(tmp_path):
    with pytest.raises(DataError, match="dataset.root.*two layouts"):
        paired_folder(root=str(tmp_path / "absent"))
    with pytest.raises(DataError, match="no training split"):
        paired_folder(root=str(tmp_path))
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="no images in .*train"):
        paired_folder(root=str(tmp_path))


def test_side_by_side_too_narrow(tmp_path):
    png(tmp_path / "train" / "a.png", size=(1, 8))
    png(tmp_path / "test" / "b.png", size=(1, 8))
    with pytest.raises(DataError, match="width >= 2"):
        paired_folder(root=str(tmp_path), resolution=R)


# ---------------------------------------------------------------------------- unpaired


def unpaired(root: Path, n_a: int, n_b: int, test: bool = True) -> None:
    for i in range(n_a):
        png(root / "trainA" / f"{i}.png", color=(i * 10, 0, 0))
    for i in range(n_b):
        png(root / "trainB" / "sub" / f"{i}.png", color=(0, i * 10, 0))
    if test:
        png(root / "testA" / "0.png")
        png(root / "testB" / "0.png", color=(255, 255, 255))


def test_unpaired_lengths_and_deterministic_pairing(tmp_path):
    unpaired(tmp_path, 3, 7)
    data = unpaired_folder(root=str(tmp_path), resolution=R)
    assert data.kind == "unpaired" and len(data) == 7 and data.shape == data.input_shape == (3, R, R)
    a, b, ya, yb = data.dataset[4]
    assert a.shape == b.shape == (3, R, R) and ya == yb == -1
    assert torch.equal(a, data.dataset.a[4 % 3])
    expected = torch.randperm(7, generator=torch.Generator().manual_seed(0))
    assert data.dataset.perm == expected.tolist()
    again = unpaired_folder(root=str(tmp_path), resolution=R).dataset
    assert all(torch.equal(again[i][1], data.dataset[i][1]) for i in range(7))
    t = data.test
    assert t.inputs.shape == t.domain_b.shape == (1, 3, R, R) and t.domain_a is t.inputs
    assert t.targets is None and t.labels is None
    assert len(next(iter(DataLoader(data.dataset, batch_size=2)))) == 4


def test_unpaired_holds_out_ten_percent_and_channels(tmp_path):
    unpaired(tmp_path, 10, 20, test=False)
    data = unpaired_folder(root=str(tmp_path), resolution=R, channels=1, channels_b=3, test_max=1)
    assert len(data.dataset.a) == 9 and len(data.dataset.b) == 18 and len(data) == 18
    assert data.input_shape == (1, R, R) and data.shape == (3, R, R)
    assert data.test.inputs.shape == (1, 1, R, R) and data.test.domain_b.shape == (1, 3, R, R)


@pytest.mark.parametrize("missing", ["trainA", "trainB"])
def test_unpaired_empty_domain_names_folder(tmp_path, missing):
    unpaired(tmp_path, 2, 2)
    for f in (tmp_path / missing).rglob("*.png"):
        f.unlink()
    with pytest.raises(DataError, match=f"no images in .*{missing}.*\\.png"):
        unpaired_folder(root=str(tmp_path), resolution=R)


# ---------------------------------------------------------------------------- user images


def test_load_user_images_file_and_folder(tmp_path):
    one = png(tmp_path / "in" / "x.png", size=(30, 20))
    png(tmp_path / "in" / "deep" / "y.jpg", size=(10, 40), mode="L", color=128)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    images, sizes, files = load_user_images(str(one), 3, R)
    assert images.shape == (1, 3, R, R) and sizes == [(30, 20)] and files == [one.resolve()]
    images, sizes, files = load_user_images(tmp_path / "in", 1, R)
    assert images.shape == (2, 1, R, R) and images.min() >= -1 and images.max() <= 1
    assert sizes == [(10, 40), (30, 20)] and [f.name for f in files] == ["y.jpg", "x.png"]


def test_load_user_images_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no images found.*input= expects an image.*\.png"):
        load_user_images(tmp_path / "empty", 3, R)
    with pytest.raises(ConfigError, match="does not exist"):
        load_user_images(tmp_path / "absent", 3, R)


def test_save_user_images_original_sizes(tmp_path):
    png(tmp_path / "in" / "a" / "x.png", size=(30, 20))
    png(tmp_path / "in" / "b" / "x.jpg", size=(10, 40))
    images, sizes, files = load_user_images(tmp_path / "in", 3, R)
    out = tmp_path / "out"
    save_user_images(images, sizes, files, out)
    assert Image.open(out / "a" / "x.png").size == (30, 20)
    assert Image.open(out / "b" / "x.png").size == (10, 40)
    single = load_user_images(tmp_path / "in" / "a" / "x.png", 1, R)
    save_user_images(*single, tmp_path / "out1")
    with Image.open(tmp_path / "out1" / "x.png") as img:
        assert img.size == (30, 20) and img.mode == "L"


# ---------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name, fn", [("paired_folder", paired_folder), ("unpaired_folder", unpaired_folder)])
def test_config_lists_every_argument(name, fn):
    cfg = OmegaConf.load(CONFIGS / f"{name}.yaml")
    assert hydra.utils.get_method(cfg._target_) is fn
    assert set(cfg) - {"_target_"} == set(inspect.signature(fn).parameters)
    defaults = {k: p.default for k, p in inspect.signature(fn).parameters.items()}
    assert {k: v for k, v in cfg.items() if k != "_target_"} == defaults
