"""ProGAN (model=progan): growing G and D, the fade-in schedule, batch per resolution, exact resume mid-fade."""
import json
import math

import pytest
import torch

from gan_cli.engine.trainer import Trainer, train
from gan_cli.errors import ConfigError
from gan_cli.games.progan import schedule
from gan_cli.models.equalized import EqualConv2d
from gan_cli.models.progan import build
from tests.conftest import FAST, compose_cfg
from tests.test_resume import differences

TINY = [*FAST, "model=progan", "model.latent_dim=16", "model.g_width=4", "model.d_width=4", "model.max_channels=16",
        "dataset=digits", "dataset.resolution=16", "trainer.threads=1"]
# 16 px: 4x4 for 2 steps, 8x8 fades in over 4 and stabilises for 2, 16x16 likewise: 14 steps
SCHEDULED = [*TINY, "model.game.stable_steps=2", "model.game.fade_steps=4", "trainer.max_steps=14"]
EXPECTED = [(4, 1.0)] * 2 + [(8, a) for a in (0, 0.25, 0.5, 0.75)] + [(8, 1.0)] * 2 \
    + [(16, a) for a in (0, 0.25, 0.5, 0.75)] + [(16, 1.0)] * 2  # (side, alpha) at steps 1..14


def progress(buffers: dict) -> tuple[int, float]:
    return int(buffers["level"]), float(buffers["alpha"])


@pytest.mark.parametrize("resolution", [16, 32])
def test_trains_and_samples_at_the_target_size(tmp_path, resolution):
    out = train(compose_cfg(*TINY, f"dataset.resolution={resolution}", "trainer.max_steps=7"), tmp_path)
    assert out["step"] == 7 and math.isfinite(out["loss/D"])
    state = torch.load(tmp_path / "checkpoints/last.pt", weights_only=True)
    levels = resolution.bit_length() - 2
    assert progress(state["networks"]["G"]) == progress(state["networks"]["D"]) == (levels - 1, 1.0)
    assert progress(state["ema"]["G"]) == (levels - 1, 1.0)  # the EMA copy has the progress buffers too
    G = build((1, resolution, resolution), latent_dim=16, g_width=4, d_width=4, max_channels=16).generator
    G.load_state_dict(state["networks"]["G"])
    G.set_progress(0, 1.0)
    z = torch.randn(3, 16)
    assert G(z).shape == (3, 1, resolution, resolution)  # always the target size by default
    assert G(z, native=True).shape == (3, 1, 4, 4)


def test_resolution_and_alpha_follow_the_schedule(tmp_path):
    train(compose_cfg(*SCHEDULED, "trainer.log_every=1"), tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    seen = [(r["progan/resolution"], r["progan/alpha"]) for r in rows if "progan/alpha" in r]
    assert seen == EXPECTED
    # both null: an even split of max_steps over the 2L - 1 phases, the remainder to the last
    assert schedule(3, 11, None, None) == [(0, False, 2), (1, True, 2), (1, False, 2), (2, True, 2), (2, False, 3)]
    assert schedule(2, 7, [1, 2], [4]) == [(0, False, 1), (1, True, 4), (1, False, 2)]


def test_layers_are_equalised():
    models = build((1, 32, 32), latent_dim=64, g_width=32, d_width=32, max_channels=64)
    for conv in (models.generator.blocks[1][1], models.discriminator.blocks[1][0]):
        assert isinstance(conv, EqualConv2d)
        w = conv.weight.detach()
        assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02  # stored N(0, 1)
        assert conv.scale == pytest.approx(math.sqrt(2) / math.sqrt(w[0].numel()))  # He's constant at run time
        with torch.no_grad():
            out = conv(torch.randn(64, w.shape[1], 8, 8))[:, :, 1:-1, 1:-1]  # unit-variance input, no padding
        assert float(out.std()) == pytest.approx(math.sqrt(2), rel=0.1)  # unit variance x gain
    assert models.generator.to_rgb[-1].scale == pytest.approx(1 / math.sqrt(32))  # toRGB: gain 1


class StopAt:
    """A stop request once `trainer` has reached `step` (what fit reads of StopOnSignal)."""

    def __init__(self, trainer: Trainer, step: int):
        self.trainer, self.step, self.signum = trainer, step, None

    @property
    def requested(self) -> bool:
        return self.trainer.step >= self.step

    def hand_over(self) -> None:
        pass


def test_resume_in_the_middle_of_a_fade_in_is_exact(tmp_path):
    train(compose_cfg(*SCHEDULED), tmp_path / "full")
    trainer = Trainer(compose_cfg(*SCHEDULED), tmp_path / "half")
    assert trainer.fit(StopAt(trainer, 5))["step"] == 5
    half = torch.load(tmp_path / "half/checkpoints/last.pt", weights_only=True)
    assert progress(half["networks"]["G"]) == progress(half["networks"]["D"]) == (1, 0.5)  # 8x8, half faded in
    resumed = train(compose_cfg(*SCHEDULED, f"trainer.resume={tmp_path / 'half'}"), tmp_path / "resumed")
    assert resumed["step"] == 14
    full = torch.load(tmp_path / "full/checkpoints/last.pt", weights_only=True)
    res = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=True)
    for part in ("networks", "ema", "optimizers", "rng", "fixed"):
        assert differences(full[part], res[part]) == [], part


def test_each_resolution_uses_its_batch_size(tmp_path):
    cfg = compose_cfg(*TINY, "model.game.stable_steps=1", "model.game.fade_steps=1", "trainer.max_steps=5",
                      "model.game.batch_sizes=[16,8,4]")
    trainer = Trainer(cfg, tmp_path)
    seen = set()
    trainer.networks["D"].register_forward_pre_hook(lambda m, args: seen.add(tuple(args[0].shape)))
    trainer.fit()
    assert seen == {(16, 1, 4, 4), (8, 1, 8, 8), (4, 1, 16, 16)}


@pytest.mark.parametrize("overrides, message", [
    (["trainer.max_steps=10"], r"model.game.stable_steps and model.game.fade_steps add up to 14 steps \(4x4: 2; "
                               r"8x8: fade 4 \+ stable 2; 16x16: fade 4 \+ stable 2\), but trainer.max_steps=10; "
                               r"set trainer.max_steps=14"),
    (["model.game.stable_steps=[1,2]"], r"model.game.stable_steps is \[1, 2\]; .* list of 3"),
    (["model.game.fade_steps=-1"], r"model.game.fade_steps is -1"),
    (["model.game.batch_sizes=[16,32,8]"], r"model.game.batch_sizes .* trainer.batch_size=16"),
    (["model.game.fade_steps=null"], r"model.game.stable_steps is set but model.game.fade_steps is null"),
])
def test_bad_game_options_are_refused_before_training(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train(compose_cfg(*SCHEDULED, *overrides), tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_resolution_must_be_a_power_of_two():
    with pytest.raises(ConfigError, match=r"dataset.resolution=24 is not a power of two .* use 8, 16, 32, 64"):
        build((1, 24, 24))
    with pytest.raises(ConfigError, match="model.max_channels"):
        build((1, 16, 16), max_channels=0)
