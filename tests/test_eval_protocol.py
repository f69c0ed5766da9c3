"""How `gan eval` scores: reference statistics cached by content, every evaluation kept, quantisation and
resize as the reference tools do them, folder and stats-file evaluation, both sides' preprocessing."""
from __future__ import annotations

import json
import sys

import pytest
import torch
from torch.utils.data import TensorDataset

from gan_cli.data.base import GanData
from gan_cli.engine.trainer import train
from gan_cli.metrics.evaluate import EvalSettings, Evaluator
from gan_cli.metrics.history import read_history
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
