"""How `gan eval` scores: reference statistics cached by content, every evaluation kept, quantisation and
resize as the reference tools do them, folder and stats-file evaluation, both sides' preprocessing."""
from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import TensorDataset
from torchvision.utils import save_image

from gan_cli.data.base import GanData
from gan_cli.engine.trainer import train
from gan_cli.errors import ConfigError
from gan_cli.logging.pictures import image_grid
from gan_cli.metrics.evaluate import EvalSettings, Evaluator
from gan_cli.metrics.extractors.base import FeatureExtractor
from gan_cli.metrics.history import read_history
from gan_cli.metrics.resize import (Preprocess, quantize_like_png, resize_clean, resize_legacy_pytorch,
                                   resize_legacy_tensorflow, to_pixels)
from gan_cli.prep.writer import PreparedWriter
from tests.conftest import FAST, TINY_MLP_RING, compose_cfg

CPU = torch.device("cpu")


def images(seed: int, n: int = 64) -> GanData:
    """n random 8x8 grey images in [-1, 1], in memory, with no fingerprint of their own."""
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return GanData(TensorDataset(x, torch.zeros(n, dtype=torch.long)), kind="image", shape=(1, 8, 8), name="digits")


def settings(tmp_path, **kw) -> EvalSettings:
    return EvalSettings(**{"metrics": ["fd"], "extractor": "raw", "num_fake": 32, "num_real": 64,
                           "cache_dir": str(tmp_path / "cache"), **kw})


def test_reference_cache_is_keyed_by_content_not_config(tmp_path):
    """Two datasets under one config: each gets its own statistics; the same content hits the cache."""
    cfg = compose_cfg("dataset=digits").dataset  # the same config (and path) for every dataset below
    fake = lambda num, seed: torch.zeros(num, 1, 8, 8)  # noqa: E731
    a, protocol_a = Evaluator(cfg, settings(tmp_path), CPU, data=images(0))(fake)
    b, protocol_b = Evaluator(cfg, settings(tmp_path), CPU, data=images(1))(fake)
    again, protocol_again = Evaluator(cfg, settings(tmp_path), CPU, data=images(0))(fake)
    assert protocol_a["reference_fingerprint"] != protocol_b["reference_fingerprint"]
    assert protocol_b["reference_cache"].startswith("written") and a["fd"] != b["fd"]  # recomputed, not stale
    assert protocol_again["reference_cache"].startswith("hit") and again == a
    assert len(list((tmp_path / "cache").glob("reference_*.pt"))) == 2
    # a dataset's own fingerprint (prepared datasets) is the key, whatever its tensors' bytes
    marked = images(0)
    marked.fingerprint = "sha256:feed"
    _, protocol = Evaluator(cfg, settings(tmp_path), CPU, data=marked)(fake)
    assert protocol["reference_fingerprint"] == "sha256:feed" and protocol["reference_cache"].startswith("written")


def test_streamed_data_without_fingerprint_is_not_cached(tmp_path):
    data = images(0)
    data.dataset = list(zip(data.dataset.tensors[0], data.dataset.tensors[1]))  # streamed: not a TensorDataset
    _, protocol = Evaluator(compose_cfg("dataset=digits").dataset, settings(tmp_path), CPU, data=data)(
        lambda num, seed: torch.zeros(num, 1, 8, 8))
    assert protocol["reference_fingerprint"] is None and protocol["reference_cache"].startswith("none")
    assert not list((tmp_path / "cache").glob("reference_*.pt"))


# ---- every evaluation kept -------------------------------------------------------------------------------

def gan_eval(monkeypatch, *args: str) -> None:
    """`gan eval ARGS` through its Hydra app in this process (no second start of torch): exits 0 or fails."""
    from gan_cli.eval import main

    monkeypatch.setattr(sys, "argv", ["gan eval", *args])
    try:
        main()
    except SystemExit as e:
        assert e.code in (0, None), f"gan eval {' '.join(args)} exited {e.code}"


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    """A tiny run evaluated during training at steps 2 and 4 (fd on 100 samples: the protocol used below)."""
    run = tmp_path_factory.mktemp("ring") / "run"
    cache = run.parent / "cache"
    train(compose_cfg(*FAST, *TINY_MLP_RING, "trainer.eval_every=2", "trainer.eval.metrics=[fd]",
                      "trainer.eval.num_fake=100", "trainer.eval.num_real=100", f"trainer.eval.cache_dir={cache}"), run)
    return run


def test_every_evaluation_is_kept_by_protocol(ring_run, monkeypatch):
    history = read_history(ring_run)
    assert [(e["protocol"]["step"], e["protocol"]["source"]) for e in history] == [(2, "training"), (4, "training")]
    args = ("metrics=[fd]", "num_real=100", f"cache_dir={ring_run.parent / 'cache'}")
    gan_eval(monkeypatch, "-m", f"ckpt={ring_run}", "num_fake=100,200", *args,
             f"hydra.sweep.dir={ring_run.parent / 'sweep'}")  # a Hydra multirun, in this process
    history = read_history(ring_run)  # step 4 at num_fake=100 is training's protocol: that entry is replaced
    points = sorted((e["protocol"]["step"], e["protocol"]["num_fake"], e["protocol"].get("source")) for e in history)
    assert points == [(2, 100, "training"), (4, 100, None), (4, 200, None)]
    latest = json.loads((ring_run / "eval.json").read_text())
    assert latest["protocol"]["num_fake"] == 200 and latest == {k: history[-1][k] for k in ("metrics", "protocol")}
    kept = {p.name: p.read_bytes() for p in (ring_run / "evals").glob("*.json")}
    gan_eval(monkeypatch, f"ckpt={ring_run}", "num_fake=200", *args)  # the same protocol again
    now = {p.name: p.read_bytes() for p in (ring_run / "evals").glob("*.json")}
    assert set(now) == set(kept) and sum(now[n] != kept[n] for n in now) == 1  # only its own entry rewritten
    assert not list((ring_run / "evals").glob(".*.tmp")) and not list(ring_run.glob(".*.tmp"))


# ---- quantisation and resize as the reference tools do them -------------------------------------------------

def test_an_app_run_in_this_process_leaves_the_loggers_working(ring_run, monkeypatch, caplog):
    """The apps' quiet logging must not disable loggers that already exist (Hydra's `disabled` does): a caller
    that runs `gan eval` and then trains in the same process still gets the trainer's log."""
    import logging

    gan_eval(monkeypatch, f"ckpt={ring_run}", "metrics=[fd]", "num_real=100", "num_fake=100",
             f"cache_dir={ring_run.parent / 'cache'}")
    assert not logging.getLogger("gan_cli.engine.trainer").disabled
    logging.getLogger().addHandler(caplog.handler)  # logging's dictConfig replaced the root's handlers: as a new test
    with caplog.at_level(logging.INFO, logger="gan_cli.engine.trainer"):
        train(compose_cfg(*FAST, *TINY_MLP_RING, "trainer.max_steps=1"), ring_run.parent / "again")
    assert "device cpu" in caplog.text


def test_quantisation_is_what_gan_sample_writes_to_png(tmp_path):
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)).clamp(-1.2, 1.2)
    x[0, 0, 0, :4] = torch.tensor([-1.0, 1.0, 0.0, 1 / 255])  # the ends, the middle and a near-tie
    save_image(image_grid(x, nrow=2), tmp_path / "x.png")  # gan sample's PNG path: tiles with 2 px padding
    png = torch.from_numpy(np.array(Image.open(tmp_path / "x.png"))).permute(2, 0, 1)
    assert torch.equal(quantize_like_png(x), torch.stack([png[:, 2:18, 2:18], png[:, 2:18, 20:36]]))
    stylegan = (x * 127.5 + 128).clamp(0, 255).to(torch.uint8)  # stylegan2-ada's metrics
    assert (quantize_like_png(x).int() - stylegan.int()).abs().max() <= 1


def test_tensorflow_1_bilinear_has_no_half_pixel_centres():
    ramp = torch.tensor([0.0, 10.0]).reshape(1, 1, 1, 2).expand(1, 1, 2, 2)
    assert resize_legacy_tensorflow(ramp, 4)[0, 0, 0].tolist() == [0.0, 5.0, 10.0, 10.0]  # half-pixel: 0, 2.5, ...
    x = torch.rand(2, 3, 5, 7)
    assert torch.allclose(resize_legacy_tensorflow(x[..., :5, :5], 5), x[..., :5, :5])


@pytest.mark.parametrize("mode", ["clean", "legacy_pytorch"])
@pytest.mark.parametrize("quantize", [True, False])
def test_resize_and_quantisation_match_clean_fid(mode, quantize):
    resize = pytest.importorskip("cleanfid.resize", reason="clean-fid is not installed (pip install clean-fid)")
    x = torch.rand(2, 3, 24, 20, generator=torch.Generator().manual_seed(1)) * 2 - 1  # generated images
    ours = resize_legacy_pytorch(to_pixels(x, quantize)) if mode == "legacy_pytorch" else resize_clean(to_pixels(x, quantize))
    fn = resize.build_resizer(mode)
    for image, mine in zip(x, ours):
        # clean-fid's folder input: the uint8 a PNG holds; its generator input: floats in [0, 255]
        hwc = (quantize_like_png(image[None]) if quantize else to_pixels(image[None], False))[0].permute(1, 2, 0)
        hwc = hwc.numpy()
        theirs = torch.from_numpy(np.ascontiguousarray(fn(hwc))).permute(2, 0, 1)
        torch.testing.assert_close(mine, theirs.float(), rtol=0, atol=0 if mode == "clean" else 1e-3)


class TinyInception(FeatureExtractor):
    """Stands in for the FID Inception (same name, no 299 px network): features are the 299 px input's channel
    means and a coarse pooling of it, so they change with any change of the preprocessed pixels."""

    name, feature_dim, num_classes = "inception_fid", 3 * 17, 1

    def preprocess(self, x):
        assert x.shape[-2:] == (299, 299)  # resized by the evaluator's preprocessing, as the Inception is
        return x

    def _forward(self, x):
        feats = F.adaptive_avg_pool2d(x, (4, 4)).flatten(1)
        return torch.cat([x.mean((2, 3)), feats], 1), x.new_zeros(len(x), 1)


def test_both_sides_are_quantised_and_stored_uint8_is_read_as_stored(tmp_path, monkeypatch):
    """A float image and the uint8 a PNG of it preprocess alike; prepared (uint8) data scores like its floats."""
    from gan_cli.metrics.extractors import inception

    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    for mode in ("clean", "legacy_pytorch", "legacy_tensorflow"):
        prep = Preprocess(True, mode)
        assert torch.equal(prep(x), prep(quantize_like_png(x))) and prep(x).shape == (2, 3, 299, 299)
    assert not torch.equal(Preprocess(False, "clean")(x), Preprocess(True, "clean")(x))
    monkeypatch.setattr(inception, "load_fid_inception", lambda *a, **k: TinyInception())
    u8 = quantize_like_png(x)
    data = GanData(TensorDataset(u8, torch.zeros(2, dtype=torch.long)), kind="image", shape=(3, 8, 8), name="p")
    evaluate = Evaluator(compose_cfg("dataset=digits").dataset, settings(tmp_path, extractor="inception",
                         num_real=2, num_fake=2, resize="legacy_tensorflow"), CPU, data=data)
    results, protocol = evaluate(lambda num, seed: x[:num])  # the generated floats are the stored images
    assert abs(results["fid"]) < 1e-6 and protocol["resize"] == "legacy_tensorflow" and protocol["quantize"] is True


def test_bad_resize_and_quantize_are_named(tmp_path):
    for bad, words in ((dict(resize="bicubic"), ["resize='bicubic'", "clean", "legacy_tensorflow"]),
                       (dict(quantize="yes"), ["quantize='yes'", "true", "false"])):
        with pytest.raises(ConfigError) as e:
            Evaluator(compose_cfg("dataset=digits").dataset, settings(tmp_path, **bad), CPU, data=images(0))
        assert all(w in str(e.value) for w in words), e.value


# ---- folders, samples and statistics files -----------------------------------------------------------------

def png_folder(folder, seed: int, n: int = 12):
    """n random 8x8 grey PNGs; returns their uint8 pixels (n, 1, 8, 8)."""
    folder.mkdir()
    x = torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    for i, image in enumerate(x):
        Image.fromarray(image[0].numpy(), mode="L").save(folder / f"{i:03d}.png")
    return x


def test_folders_samples_and_statistics_files(tmp_path, monkeypatch, capsys):
    fid_score = pytest.importorskip("pytorch_fid.fid_score", reason="pytorch-fid is not installed (pip install pytorch-fid)")
    a, b = png_folder(tmp_path / "a", 0), png_folder(tmp_path / "b", 1)
    np.savez(tmp_path / "a.npz", samples=(a.float() / 127.5 - 1).numpy())  # `gan sample out=X.npz`: floats
    common = ("extractor=raw", "metrics=[fd]", "num_real=12", "num_fake=12", f"cache_dir={tmp_path / 'cache'}")
    report = lambda: json.loads((tmp_path / "e.json").read_text())  # noqa: E731
    gan_eval(monkeypatch, f"real={tmp_path / 'a'}", f"fake={tmp_path / 'b'}", f"save_stats={tmp_path / 's.npz'}",
             f"out={tmp_path / 'e.json'}", *common)
    fd_ab, protocol = report()["metrics"]["fd"], report()["protocol"]
    assert fd_ab > 0 and protocol["real"] == str(tmp_path / "a") and protocol["preprocessing"]["differences"] == []
    assert protocol["preprocessing"]["real"]["values"] == "uint8 as stored"
    # the statistics file: pytorch-fid's loader reads it, and scoring against it gives the same FD
    mu, sigma = fid_score.compute_statistics_of_path(str(tmp_path / "s.npz"), None, 1, 64, "cpu")
    assert mu.shape == (64,) and sigma.shape == (64, 64)
    feats = a.flatten(1).double() / 127.5 - 1
    np.testing.assert_allclose(mu, feats.mean(0).numpy(), atol=1e-6)  # features are float32
    np.testing.assert_allclose(sigma, np.cov(feats.numpy(), rowvar=False), atol=1e-6)
    gan_eval(monkeypatch, f"real_stats={tmp_path / 's.npz'}", f"fake={tmp_path / 'b'}", f"out={tmp_path / 'e.json'}",
             *common)
    assert report()["metrics"]["fd"] == pytest.approx(fd_ab, rel=1e-9)
    gan_eval(monkeypatch, f"real={tmp_path / 'a'}", f"save_stats={tmp_path / 'only.npz'}", *common)  # stats alone
    assert np.array_equal(np.load(tmp_path / "only.npz")["mu"], mu) and len(list((tmp_path / "evals").glob("*"))) == 2
    # .npz samples: the floats of a's images quantise back to a's bytes, so a against them scores 0
    gan_eval(monkeypatch, f"real={tmp_path / 'a'}", f"fake={tmp_path / 'a.npz'}", f"out={tmp_path / 'e.json'}", *common)
    assert abs(report()["metrics"]["fd"]) < 1e-5  # identical features; eigen-solver rounding only
    capsys.readouterr()
    np.savez(tmp_path / "noisy.npz", samples=(a.float() / 127.5 - 1 + 1e-3).numpy())
    gan_eval(monkeypatch, f"real={tmp_path / 'a'}", f"fake={tmp_path / 'noisy.npz'}", "quantize=false",
             f"out={tmp_path / 'e.json'}", *common)
    warning = [line for line in capsys.readouterr().out.splitlines() if "not prepared alike" in line]
    assert len(warning) == 1 and "values uint8 (real) vs float (generated)" in warning[0], warning
    assert report()["protocol"]["preprocessing"]["differences"] == ["values uint8 (real) vs float (generated)"]


@pytest.mark.parametrize("args, words", [
    ([], ["ckpt=RUN", "real=PATH fake=PATH"]),
    (["real={tmp}/nothing", "fake={tmp}/nothing"], ["real={tmp}/nothing", "no such file", "prepared dataset"]),
    (["real={tmp}/s.npz", "fake={tmp}/s.npz"], ["real={tmp}/s.npz", "samples", "real_stats=FILE"]),
    (["real_stats={tmp}/wrong.npz", "fake={tmp}/b"], ["real_stats={tmp}/wrong.npz", "(3,)", "64 dimensions"]),
    (["real_stats={tmp}/s.npz", "fake={tmp}/b", "metrics=[kid]"], ["kid", "real_stats", "mean and covariance"]),
])
def test_bad_sides_are_one_paragraph(tmp_path, monkeypatch, capsys, args, words):
    png_folder(tmp_path / "b", 1)
    np.savez(tmp_path / "s.npz", mu=np.zeros(64), sigma=np.eye(64))
    np.savez(tmp_path / "wrong.npz", mu=np.zeros(3), sigma=np.eye(3))
    monkeypatch.setattr(sys, "argv", ["gan eval", "extractor=raw", "num_real=12", "num_fake=12",
                                      f"cache_dir={tmp_path / 'cache'}", *(a.format(tmp=tmp_path) for a in args)])
    from gan_cli.eval import main

    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err
    assert e.value.code == 1 and "Traceback" not in err
    flat = "".join(err.replace("│", "").split())  # the message's panel, unwrapped (paths break anywhere)
    assert all("".join(w.format(tmp=tmp_path).split()) in flat for w in words), err


def prepare(out, x: torch.Tensor) -> None:
    """A prepared dataset of the uint8 images x (N, C, H, W) at `out`, replacing what is there."""
    writer = PreparedWriter(out)
    for image in x:
        writer.add(image.numpy(), -1)
    writer.finish({"source": "test", "num_classes": 0}, overwrite=True)


def test_a_prepared_dataset_changed_in_place_is_recomputed(tmp_path, monkeypatch):
    """The same dataset path with other images: new fingerprint, new statistics; unchanged: the cache."""
    a, b = png_folder(tmp_path / "a", 0), png_folder(tmp_path / "b", 1)
    np.savez(tmp_path / "a.npz", samples=(a.float() / 127.5 - 1).numpy())
    common = (f"real={tmp_path / 'prep'}", f"fake={tmp_path / 'a.npz'}", "extractor=raw", "metrics=[fd]",
              "num_real=12", "num_fake=12", f"cache_dir={tmp_path / 'cache'}", f"out={tmp_path / 'e.json'}")
    seen = []
    for images in (a, b, b):
        prepare(tmp_path / "prep", images)
        gan_eval(monkeypatch, *common)
        report = json.loads((tmp_path / "e.json").read_text())
        seen.append((report["metrics"]["fd"], report["protocol"]["reference_fingerprint"],
                     report["protocol"]["reference_cache"].split(":")[0]))
    manifest = json.loads((tmp_path / "prep" / "manifest.json").read_text())
    assert abs(seen[0][0]) < 1e-5 and seen[1][0] > 1 and seen[2][0] == seen[1][0]  # a vs a; b vs a, not stale
    assert [s[2] for s in seen] == ["written", "written", "hit"] and seen[2][1] == manifest["fingerprint"] != seen[0][1]


@pytest.mark.parametrize("n, channels, nrow", [(5, 1, 2), (9, 3, None), (1, 1, None), (3, 3, 8)])
def test_sample_grids_have_torchvision_s_pixels(tmp_path, n, channels, nrow):
    """image_grid + save_picture (written to spare every command torchvision's import) give the bytes of
    torchvision's make_grid + save_image, out-of-range values included."""
    from torchvision.utils import make_grid

    from gan_cli.logging.pictures import save_picture

    x = torch.randn(n, channels, 6, 7, generator=torch.Generator().manual_seed(n)) * 1.2
    ours = image_grid(x, nrow=nrow)
    theirs = make_grid(x, nrow=nrow or math.ceil(math.sqrt(n)), padding=2, normalize=True, value_range=(-1, 1))
    assert torch.equal(ours, theirs)
    save_picture(ours, tmp_path / "ours.png")
    save_image(theirs, tmp_path / "theirs.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "ours.png")), np.asarray(Image.open(tmp_path / "theirs.png")))
