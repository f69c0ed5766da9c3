"""gan prepare and dataset=prepared: real files in tmp_path, in-process calls."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from gan_cli.data.prepared import prepared
from gan_cli.data.selection import select
from gan_cli.engine.batches import BatchStream
from gan_cli.errors import ConfigError, DataError
from gan_cli.prepare import prepare

BASE = dict(kind="image", resolution=8, channels=3, channels_b=None, direction="AtoB", split="train",
            labels="folders", filter="lanczos", crop="center", background=[255, 255, 255], min_size=8, max_images=None,
            root="data", workers=1, overwrite=False)


def cfg(source, out, **kw):
    return OmegaConf.create({**BASE, "source": str(source), "out": str(out), **kw})


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "src"
    for c in ("a", "b"):
        (src / c).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (12 + i, 10), (i * 30, 0, 200)).save(src / c / f"{i}.png")
    Image.new("RGBA", (10, 10), (0, 255, 0, 100)).save(src / "a" / "rgba.png")
    Image.new("P", (10, 10), 3).save(src / "b" / "pal.png")
    Image.new("RGB", (16, 16)).save(src / "a" / "x.jpg")
    (src / "a" / "trunc.jpg").write_bytes((src / "a" / "x.jpg").read_bytes()[:40])
    (src / "b" / "empty.png").write_bytes(b"")
    (src / "b" / "text.png").write_text("not an image")
    Image.new("RGB", (4, 4)).save(src / "b" / "tiny.png")
    return src


def test_prepare_folder_skips_bad_files_and_is_deterministic(folder, tmp_path):
    m1 = prepare(cfg(folder, tmp_path / "p1"))
    m2 = prepare(cfg(folder, tmp_path / "p2", workers=2))
    assert m1["count"] == 15 and m1["class_names"] == ["a", "b"] and m1["num_classes"] == 2
    assert {s["reason"] for s in m1["skipped"]} == {"empty", "not a readable image", "smaller than min_size"}
    assert m1["fingerprint"] == m2["fingerprint"]
    assert (tmp_path / "p1" / "images.u8").read_bytes() == (tmp_path / "p2" / "images.u8").read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(ConfigError, match="overwrite=true"):
        prepare(cfg(folder, tmp_path / "p1"))


def test_bad_sources_and_labels(folder, tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        prepare(cfg(tmp_path / "missing", tmp_path / "o"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        prepare(cfg(tmp_path / "empty", tmp_path / "o"))
    (tmp_path / "l.txt").write_text("x")
    with pytest.raises(DataError, match="unknown labels file format"):
        prepare(cfg(folder, tmp_path / "o", labels=str(tmp_path / "l.txt")))
    (tmp_path / "l.json").write_text(json.dumps({"a/nope.png": "cat"}))
    with pytest.raises(DataError, match="not in the source"):
        prepare(cfg(folder, tmp_path / "o", labels=str(tmp_path / "l.json")))
    (tmp_path / "l.csv").write_text("file,class\na/0.png,cat\nb/0.png,dog\n")
    m = prepare(cfg(folder, tmp_path / "o", labels=str(tmp_path / "l.csv")))
    assert m["class_names"] == ["cat", "dog"]
    assert not (tmp_path / "o_bad").exists()


def test_zip_source_and_dataset(folder, tmp_path):
    import zipfile
    with zipfile.ZipFile(tmp_path / "s.zip", "w") as z:
        for f in sorted(folder.rglob("*.png")):
            z.write(f, f.relative_to(folder).as_posix())
    m = prepare(cfg(tmp_path / "s.zip", tmp_path / "pz", labels="none", crop="pad", max_images=5))
    assert m["count"] == 5 and m["num_classes"] == 0
    data = prepared(str(tmp_path / "pz"), xflip=True)
    assert data.in_memory and data.fingerprint == m["fingerprint"]
    mapped = prepared(str(tmp_path / "pz"), in_memory_gb=1e-9)
    assert not mapped.in_memory
    a = BatchStream(data, 4, torch.device("cpu"), seed=1, num_workers=0).next()
    b = BatchStream(mapped, 4, torch.device("cpu"), seed=1, num_workers=0).next()
    assert a[0].dtype == torch.float32 and a[0].min() >= -1 and b[0].max() <= 1
    noflip = BatchStream(prepared(str(tmp_path / "pz")), 4, torch.device("cpu"), seed=1, num_workers=0).next()
    assert torch.equal(noflip[0], b[0])
    assert len(select(prepared(str(tmp_path / "pz")), subset=3)) == 3
    assert not select(mapped, subset=3).in_memory  # still memory-mapped, reading its 3 rows


def test_dataset_path_errors(folder, tmp_path):
    with pytest.raises(DataError, match="gan prepare"):
        prepared(str(tmp_path / "nothing"))
    with pytest.raises(DataError, match="gan prepare"):
        prepared(str(folder))
    prepare(cfg(folder, tmp_path / "p"))
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    (tmp_path / "p" / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(DataError, match="format version 99"):
        prepared(str(tmp_path / "p"))


def test_a_recipe_resolution_must_be_the_prepared_one(folder, tmp_path):
    """experiment=quickstart sets dataset.resolution=32: with a dataset prepared at 8 px that is one clear error."""
    from gan_cli.data.selection import build_dataset
    from tests.conftest import compose_cfg

    prepare(cfg(folder, tmp_path / "p"))
    node = compose_cfg("experiment=quickstart", "dataset=prepared", f"dataset.path={tmp_path / 'p'}").dataset
    with pytest.raises(DataError, match=r"dataset\.resolution=32, but .* was prepared at 8 px"):
        build_dataset(node)
    node.resolution = 8
    assert build_dataset(node).shape == (3, 8, 8)


def test_large_jpegs_decode_reduced_and_match_a_full_decode(tmp_path):
    """A 512x384 JPEG prepared at 32 px decodes at 1/4 scale (its short side 96, at least twice 32) and, after
    the lanczos resize, differs from the full decode's result by about one grey level."""
    import io

    from gan_cli.prep.images import _draft, decode

    rng = np.random.default_rng(0)
    field = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((512, 384), Image.BICUBIC)
    buffer = io.BytesIO()
    field.save(buffer, "JPEG", quality=95)
    data = buffer.getvalue()
    for resolution, crop, size in ((32, "center", (128, 96)), (32, "pad", (64, 48)), (128, "center", (512, 384))):
        with Image.open(io.BytesIO(data)) as img:
            _draft(img, resolution, crop)
            img.load()
            assert img.size == size  # at least twice the resized side; no reduction when that is the full size
    full = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").crop((64, 0, 448, 384))
                      .resize((32, 32), Image.LANCZOS)).transpose(2, 0, 1)
    ours = decode(data, resolution=32, channels=3, crop="center", filter="lanczos", background=(0, 0, 0), min_size=8)
    assert ours.shape == (3, 32, 32)
    assert np.abs(ours.astype(int) - full).mean() < 1.5


def test_decode_normalises_and_flips_whole_images_seeded_by_step():
    from gan_cli.data.prepared import Decode

    x = torch.randint(0, 256, (64, 3, 5, 5), dtype=torch.uint8)
    plain = Decode(xflip=False, seed=0)(x.clone(), step=3)
    assert plain.dtype == torch.float32 and plain.min() >= -1 and plain.max() <= 1
    assert torch.allclose(plain, x.float() / 127.5 - 1, atol=1e-6)
    out = Decode(xflip=True, seed=0)(x.clone(), step=3)
    flipped = (out == plain.flip(-1)).flatten(1).all(1)
    assert ((out == plain).flatten(1).all(1) | flipped).all()  # each image as it is or mirrored
    assert 10 < int(flipped.sum()) < 54
    assert torch.equal(Decode(xflip=True, seed=0)(x.clone(), step=3), out)  # repeatable: a resume sees the same
    assert not torch.equal(Decode(xflip=True, seed=0)(x.clone(), step=4), out)


def test_train_and_resume_exactly_on_prepared_memmapped(folder, tmp_path):
    from gan_cli.engine.trainer import train
    from tests.conftest import FAST, compose_cfg
    from tests.test_resume import differences

    prepare(cfg(folder, tmp_path / "p", resolution=16))
    args = [*FAST, "model=dcgan", "model.g_width=8", "model.d_width=8", "model.latent_dim=16", "dataset=prepared",
            f"dataset.path={tmp_path / 'p'}", "dataset.xflip=true", "trainer.batch_size=4",
            "trainer.data_in_memory_gb=1e-9", "trainer.ckpt_every=100", "trainer.sample_every=100"]
    train(compose_cfg(*args, "trainer.max_steps=6"), tmp_path / "full")
    train(compose_cfg(*args, "trainer.max_steps=3"), tmp_path / "half")
    train(compose_cfg(*args, "trainer.max_steps=6", f"trainer.resume={tmp_path / 'half'}"), tmp_path / "resumed")
    full, res = (torch.load(tmp_path / f"{r}/checkpoints/last.pt", weights_only=True) for r in ("full", "resumed"))
    assert differences(full["networks"], res["networks"]) == []


def test_cgan_trains_on_prepared_labels(folder, tmp_path):
    from gan_cli.engine.trainer import train
    from tests.conftest import FAST, compose_cfg

    prepare(cfg(folder, tmp_path / "p", resolution=16))
    result = train(compose_cfg(*FAST, "model=cgan", "dataset=prepared", f"dataset.path={tmp_path / 'p'}",
                               "trainer.batch_size=4"), tmp_path / "run")
    assert result["step"] == 4


def test_the_doctor_and_the_real_grid_see_prepared_images_as_floats(folder, tmp_path):
    """Prepared images are uint8 until decoded: the doctor's diversity reference is in [-1, 1] like G's output."""
    from gan_cli.engine.trainer import Trainer
    from tests.conftest import FAST, compose_cfg

    prepare(cfg(folder, tmp_path / "p", resolution=16))
    trainer = Trainer(compose_cfg(*FAST, "model=dcgan", "model.g_width=8", "model.d_width=8", "dataset=prepared",
                                  f"dataset.path={tmp_path / 'p'}", "trainer.batch_size=4"), tmp_path / "run")
    items = prepared(str(tmp_path / "p")).dataset.tensors[0][:4]  # (4, 3, 16, 16) uint8
    real = trainer.monitor.real_batch
    assert real.dtype == torch.float32 and torch.allclose(real, items.float() / 127.5 - 1, atol=1e-6)


def test_non_power_of_two_warns_and_overwrite_replaces(folder, tmp_path, capsys):
    prepare(cfg(folder, tmp_path / "p", resolution=12))
    said = capsys.readouterr().out
    assert "resolution=12 is not a power of two" in said and "dcgan" in said and "pix2pix" in said
    m = prepare(cfg(folder, tmp_path / "p", overwrite=True))
    assert m["shape"] == [3, 8, 8] and json.loads((tmp_path / "p" / "manifest.json").read_text())["shape"] == [3, 8, 8]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p", "src"]  # no temp or old folder left


@pytest.mark.parametrize("where", ["images", "manifest"])
def test_disk_full_removes_the_temp_folder(folder, tmp_path, monkeypatch, where):
    # A full disk cannot be made here without root: the writer's writes raise ENOSPC as the OS would.
    import errno
    import pathlib

    from gan_cli.prep import writer

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    class FullDisk:
        closed = False
        write = full

        def __init__(self, *args):
            pass

        def close(self):
            self.closed = True

    if where == "images":
        monkeypatch.setattr(writer, "open", FullDisk, raising=False)
    else:
        monkeypatch.setattr(pathlib.Path, "write_text", full)
    with pytest.raises(DataError, match=r"No space left on device.*temp folder .* was removed and nothing was written"):
        prepare(cfg(folder, tmp_path / "p"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_ctrl_c_stops_at_once_and_leaves_nothing(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    src = tmp_path / "src"
    src.mkdir()
    Image.effect_noise((1500, 1500), 60).convert("RGB").save(src / "big.jpg", quality=95)  # tens of ms each
    for i in range(400):
        (src / f"{i}.jpg").symlink_to(src / "big.jpg")
    cmd = [sys.executable, "-m", "gan_cli.cli", "prepare", f"source={src}", f"out={tmp_path / 'p'}", "workers=2"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    while not list(tmp_path.glob(".p.partial-*")) and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # decoding in the workers
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to the whole process group, workers too
    start = time.perf_counter()
    out, _ = proc.communicate(timeout=20)
    assert time.perf_counter() - start < 3, out
    assert proc.returncode == 130 and "nothing was written" in out and "Traceback" not in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]

