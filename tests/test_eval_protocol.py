"""How `gan eval` scores: reference statistics cached by content, every evaluation kept, quantisation and
resize as the reference tools do them, folder and stats-file evaluation, both sides' preprocessing."""
from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from gan_cli.data.base import GanData
from gan_cli.metrics.evaluate import EvalSettings, Evaluator
from tests.conftest import compose_cfg

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

