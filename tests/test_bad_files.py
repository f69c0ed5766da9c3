"""Streamed folder datasets with bad files: skipped and named once, never a hang; content fingerprints; perf/data_ms.

Tiny real image files are written to tmp_path. The run that used to hang for ever (an error in a
DataLoader worker while the dataset was read into memory) runs as a subprocess with a timeout.
"""
from __future__ import annotations

import io
import math
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from gan_cli.data import unreadable
from gan_cli.data.embedded import digits
from gan_cli.data.translation_folders import paired_folder, unpaired_folder
from gan_cli.data.vision import image_folder
from gan_cli.engine.batches import BatchStream, _stop, materialize
from gan_cli.engine.trainer import train
from gan_cli.errors import DataError
from gan_cli.interrupt import ignore_stop_signals
from tests.conftest import FAST, REPO, compose_cfg
from tests.tb import read_events

R = 8


def png(path: Path, shade: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (10, 10), (shade, 255 - shade, 0)).save(path)
    return path


def bad(path: Path, kind: str) -> Path:
    """An empty file, a truncated JPEG or a text file renamed .png."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        jpeg = io.BytesIO()
        Image.new("RGB", (64, 64), (9, 99, 199)).save(jpeg, "JPEG")
        path.write_bytes(jpeg.getvalue()[:300])
    else:
        path.write_text("not an image\n")
    return path


def folder(root: Path, good: int = 6) -> Path:
    """Sorted: 00 01e 02t 03 04x 05 ... : bad files between good ones, and one last (it wraps round to 00)."""
    for i in range(good):
        png(root / f"{2 * i:02d}.png", 40 * i)
    bad(root / "01e.png", "empty"), bad(root / "02t.jpg", "truncated"), bad(root / "99x.png", "text")
    return root


def test_bad_files_are_skipped_for_the_next_readable_one_and_named_once(tmp_path, capsys):
    data = image_folder(root=str(folder(tmp_path / "img")), resolution=R)
    assert len(data) == 9  # bad files keep their index: batch shapes and resume positions do not change
    items = [data.dataset[i][0] for i in range(len(data))]
    names = [f.name for f in data.dataset.files]
    for i, name in enumerate(names):
        substitute = next(j % len(names) for j in range(i, i + len(names)) if names[j % len(names)][2] == ".")
        assert torch.equal(items[i], items[substitute]), name
    data.dataset[1], data.dataset[8]  # read again: named once only
    out = capsys.readouterr().out
    for name, reason in [("01e.png", "an empty file"), ("02t.jpg", "not a readable image"),
                         ("99x.png", "not an image PIL can identify")]:
        assert out.count(f"{tmp_path / 'img' / name}: {reason}") == 1, out


def test_a_pair_is_skipped_whole_and_unpaired_domains_skip_their_own(tmp_path):
    root = tmp_path / "pairs"
    for side in "AB":
        for i in range(5):
            png(root / side / "train" / f"{i}.png", 50 * i + (side == "B"))
        png(root / side / "test" / "t.png", 7)
    bad(root / "B" / "train" / "2.png", "truncated")
    data = paired_folder(root=str(root), resolution=R)
    a2, b2, _ = data.dataset[2]
    a3, b3, _ = data.dataset[3]
    assert torch.equal(a2, a3) and torch.equal(b2, b3)  # A/train/2.png is fine, but its pair is skipped whole

    root = tmp_path / "unpaired"
    for i in range(4):
        png(root / "trainA" / f"{i}.png", 60 * i), png(root / "trainB" / f"{i}.png", 60 * i + 1)
    bad(root / "trainA" / "1.png", "empty"), bad(root / "trainB" / "0.png", "text")
    data = unpaired_folder(root=str(root), resolution=R)  # the last of each domain is held out
    a = data.dataset.a
    assert torch.equal(a[1], a[2]) and torch.equal(data.dataset.b[0], data.dataset.b[1])
    assert len(data.test.inputs) == len(data.test.domain_b) == 1
    with pytest.raises(DataError, match="None of the 1 image files under .*testB"):  # B's held-out file is bad
        bad(root / "testB" / "only.png", "empty")
        unpaired_folder(root=str(root), resolution=R)


def test_a_folder_with_nothing_readable_is_one_clear_error(tmp_path):
    root = tmp_path / "junk"
    bad(root / "a.png", "empty"), bad(root / "b.jpg", "truncated")
    with pytest.raises(DataError, match=rf"None of the 2 image files under {root} can be read \(the first, "
                                        rf"{root}/a.png: an empty file.*PNG, JPEG.*dataset.root"):
        image_folder(root=str(root), resolution=R)


def test_workers_name_what_they_skip_and_give_what_the_main_process_reads(tmp_path, capsys, monkeypatch):
    data = image_folder(root=str(folder(tmp_path / "img")), resolution=R)

    def named_once() -> bool:
        out = capsys.readouterr().out
        monkeypatch.setattr(unreadable, "_reported", set())  # forget them, for the next reader
        return all(out.count(f"{tmp_path / 'img' / name}:") == 1 for name in ("01e.png", "02t.jpg", "99x.png"))

    capsys.readouterr()
    in_memory = materialize(data, limit_gb=1, num_workers=2)
    assert named_once()
    stream = BatchStream(data, batch_size=4, device=torch.device("cpu"), num_workers=2)
    try:
        batches = [stream.next()[0] for _ in range(4)]  # two epochs: every index read twice, by either worker
    finally:
        stream.close()
    assert all(b.shape == (4, 3, R, R) for b in batches) and named_once()
    assert torch.equal(in_memory.dataset.tensors[0], torch.stack([data.dataset[i][0] for i in range(9)]))


def _worker_fails(self, index):
    if torch.utils.data.get_worker_info() is not None:
        raise RuntimeError("boom in a worker")
    return type(self).read_ok(self, index)


def test_an_error_in_a_worker_while_training_stops_the_workers(tmp_path, monkeypatch):
    from gan_cli.data import vision

    monkeypatch.setattr(vision._FlatImages, "read_ok", vision._FlatImages.read, raising=False)
    monkeypatch.setattr(vision._FlatImages, "read", _worker_fails)
    cfg = compose_cfg(*FAST, "dataset=image_folder", f"dataset.root={folder(tmp_path / 'img', good=16)}",
                      f"dataset.resolution={R}", "model=mlp", "model.hidden_dim=8",
                      "trainer.num_workers=2", "trainer.data_in_memory_gb=0", "trainer.batch_size=4")
    with pytest.raises(DataError, match="Reading img failed in a DataLoader worker: RuntimeError: boom in a worker. "
                                        "trainer.num_workers=0"):
        train(cfg, tmp_path / "run")
    assert multiprocessing.active_children() == []


def test_an_error_in_a_worker_while_reading_into_memory_ends_the_run_at_once(tmp_path):
    """This run hung for ever: the workers ignore SIGTERM, and nothing stopped them before exit."""
    script = "\n".join([
        "import sys, torch.utils.data",
        "from gan_cli.data import vision",
        "read = vision._FlatImages.read",
        "def fail(self, index):",
        "    if torch.utils.data.get_worker_info() is not None:",
        "        raise RuntimeError('boom in a worker')",
        "    return read(self, index)",
        "vision._FlatImages.read = fail",
        "from gan_cli.train import main",
        "sys.argv[0] = 'gan train'",
        "main()"])
    args = [*FAST, "dataset=image_folder", f"dataset.root={folder(tmp_path / 'img')}", f"dataset.resolution={R}",
            "model=mlp", "model.hidden_dim=8", "trainer.num_workers=2", "trainer.batch_size=4",
            f"hydra.run.dir={tmp_path / 'run'}"]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={**env, "COLUMNS": "200"})
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "DataError" in out and "boom in a worker" in out and "Traceback" not in out


def _busy_worker(ready) -> None:
    ignore_stop_signals()  # as DataLoader workers do
    ready.set()
    time.sleep(60)


def test_a_worker_still_busy_when_told_to_stop_is_killed():
    """torch ends a worker that does not finish its batch in 5 s with SIGTERM, which workers ignore: the run hung."""
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    worker = context.Process(target=_busy_worker, args=(ready,), daemon=True)
    worker.start()
    assert ready.wait(10)

    class Workers:  # a DataLoader iterator whose shutdown leaves the busy worker behind
        _workers = [worker]

        def _shutdown_workers(self):
            worker.terminate()

    start = time.monotonic()
    _stop(Workers())
    assert not worker.is_alive() and time.monotonic() - start < 5


# ---------------------------------------------------------------------------- fingerprints


def test_folder_fingerprints_follow_the_content(tmp_path):
    root = folder(tmp_path / "img")
    first = image_folder(root=str(root), resolution=R).fingerprint
    assert len(first) == 64 and image_folder(root=str(root), resolution=R).fingerprint == first
    assert image_folder(root=str(root), resolution=2 * R).fingerprint != first  # other tensors
    png(root / "00.png", 200)  # rewritten in place
    rewritten = image_folder(root=str(root), resolution=R).fingerprint
    stat = os.stat(root / "04.png")
    os.utime(root / "04.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # touched
    touched = image_folder(root=str(root), resolution=R).fingerprint
    assert len({first, rewritten, touched}) == 3
    assert digits(resolution=16).fingerprint == digits(resolution=16).fingerprint != digits(resolution=32).fingerprint


# ---------------------------------------------------------------------------- perf/data_ms


def test_data_wait_is_logged_with_the_step_time_and_the_doctor_names_a_data_bottleneck(tmp_path, monkeypatch):
    from gan_cli.data import vision

    read = vision._FlatImages.read
    monkeypatch.setattr(vision._FlatImages, "read", lambda self, i: (time.sleep(0.02), read(self, i))[1])  # slow disk
    cfg = compose_cfg(*FAST, "dataset=image_folder", f"dataset.root={folder(tmp_path / 'img')}",
                      f"dataset.resolution={R}", "model=mlp", "model.hidden_dim=8", "trainer.batch_size=4",
                      "trainer.data_in_memory_gb=0", "trainer.doctor.warmup_steps=0", "trainer.doctor.window=1",
                      "trainer.sample_every=100", "trainer.ckpt_every=100")  # step 4's window: steps and data only
    result = train(cfg, tmp_path / "run")
    events = read_events(tmp_path / "run" / "tb")
    waits, steps = events.Scalars("perf/data_ms"), events.Scalars("perf/step_ms")
    assert [e.step for e in waits] == [e.step for e in steps] == [2, 4]
    assert all(math.isfinite(w.value) and 4 * 20 <= w.value < s.value for w, s in zip(waits, steps))
    assert result["health/data_bound"] == 1.0  # the doctor saw it
