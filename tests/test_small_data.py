"""Small data and fine-tuning: gradient accumulation, ADA, LeCam / bCR / zCR, FreezeD, init_from, subsets."""
from __future__ import annotations

import json
import math

import pytest
import torch

from gan_cli.data.selection import build_dataset
from gan_cli.doctor import Doctor, DoctorConfig
from gan_cli.engine.trainer import train
from gan_cli.errors import CheckpointError, ConfigError
from gan_cli.games.d_regularisers import consistency_transform
from gan_cli.models.freeze import input_blocks
from tests.conftest import FAST, TINY_DCGAN, TINY_MLP_RING, compose_cfg

CPU = torch.device("cpu")


def last(run) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)


def logged(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def tensors(tree, prefix=""):
    """Every tensor of a nested checkpoint entry, by path."""
    if isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, dict):
        for k, v in tree.items():
            yield from tensors(v, f"{prefix}.{k}")
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from tensors(v, f"{prefix}[{i}]")


# ---------------------------------------------------------------- gradient accumulation

def test_accumulated_batches_update_as_one_big_batch(tmp_path):
    """4 x 16 accumulated = one batch of 64 (no BatchNorm; R1, EMA and two D steps per G step), to float tolerance;
    the logged throughput counts the full batch."""
    common = [*FAST, *TINY_MLP_RING, "dataset.num_samples=256", "trainer.max_steps=3", "trainer.n_critic=2",
              "penalty=r1", "trainer.ema.enabled=true", "trainer.log_every=1", "trainer.doctor.enabled=false"]
    train(compose_cfg(*common, "trainer.batch_size=64"), tmp_path / "big")
    train(compose_cfg(*common, "trainer.batch_size=16", "trainer.accumulate=4"), tmp_path / "accumulated")
    big, acc = last(tmp_path / "big"), last(tmp_path / "accumulated")
    for part in ("networks", "ema"):
        for (name, a), (_, b) in zip(tensors(big[part]), tensors(acc[part])):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), name
    train(compose_cfg(*common, "trainer.batch_size=16"), tmp_path / "small")  # the control: one batch of 16
    small = dict(tensors(last(tmp_path / "small")["networks"]))
    assert any(not torch.allclose(a, small[name], atol=1e-5, rtol=1e-4) for name, a in tensors(big["networks"]))
    row = logged(tmp_path / "accumulated")[-1]
    assert row["perf/img_per_s"] * row["perf/step_ms"] / 1000 == pytest.approx(64)  # 16 x 4 images a step


def test_accumulate_must_be_a_positive_integer(tmp_path):
    with pytest.raises(ConfigError, match=r"trainer\.accumulate must be a positive integer.*got 0"):
        train(compose_cfg(*FAST, *TINY_MLP_RING, "trainer.accumulate=0"), tmp_path / "run")
    with pytest.raises(ConfigError, match=r"trainer\.accumulate=2 cannot be combined with trainer\.unroll_steps"):
        train(compose_cfg(*FAST, *TINY_MLP_RING, "trainer.accumulate=2", "trainer.unroll_steps=2"), tmp_path / "r2")


# ---------------------------------------------------------------- exact resume with everything on

SMALL = [*FAST, *TINY_DCGAN, "dataset.subset=64", "trainer.max_steps=8", "trainer.ckpt_every=4",
         "trainer.ada.enabled=true", "trainer.ada.interval=2", "trainer.ada.speed=2.0", "trainer.lecam.weight=0.3",
         "trainer.lecam.start=2", "trainer.accumulate=2", "trainer.batch_size=8", "trainer.bcr.real=1",
         "trainer.zcr.d=1", "trainer.zcr.g=0.5", "trainer.ema.enabled=true"]


def test_exact_resume_with_ada_lecam_consistency_and_accumulation(tmp_path):
    straight = tmp_path / "straight"
    train(compose_cfg(*SMALL), straight)
    halves = tmp_path / "halves"
    train(compose_cfg(*SMALL, "trainer.max_steps=4"), halves)
    train(compose_cfg(*SMALL, "trainer.resume=auto"), halves)
    a, b = last(straight), last(halves)
    assert a["step"] == b["step"] == 8
    assert 0 < float(a["ada"]["p"]) <= 1  # p moved, and is saved
    assert "lecam" in a["game_state"][0]
    for part in ("networks", "ema", "optimizers", "ada", "game_state", "rng"):
        pairs = list(zip(tensors(a[part]), tensors(b[part])))
        assert pairs
        for (name, x), (_, y) in pairs:
            assert torch.equal(x, y), f"{part}{name}"
    tags = set().union(*logged(straight))
    assert {"ada/p", "ada/rt", "penalty/lecam", "penalty/bcr_real", "penalty/zcr_d", "penalty/zcr_g"} <= tags


@pytest.mark.parametrize("model", [["model=cgan"], ["model=resnet"], ["model=sagan"], ["model=biggan"],
                                   ["model=stylegan", "model.w_dim=8"],
                                   ["model=progan", "model.game.stable_steps=[0,0,1]", "model.game.fade_steps=[0,1]"]])
def test_ada_trains_every_noise_to_image_game(model, tmp_path):
    """ADA on every image game (conditional ones too): p moves and is saved; ProGAN's growing D sees it too."""
    train(compose_cfg(*FAST, *TINY_DCGAN, *model, "model.g_width=4", "model.d_width=4", "trainer.max_steps=2",
                      "trainer.batch_size=8", "trainer.ada.enabled=true", "trainer.ada.interval=1",
                      "trainer.ada.speed=10", "trainer.ada.target=-0.99"), tmp_path)
    assert float(last(tmp_path)["ada"]["p"]) > 0  # r_t above -0.99 (D not sure every real is fake): p rose from 0


def test_ada_p_rises_on_a_memorised_set_and_is_refused_for_points(tmp_path):
    run = tmp_path / "run"
    train(compose_cfg(*FAST, *TINY_DCGAN, "dataset.subset=16", "trainer.max_steps=40", "trainer.log_every=10",
                      "trainer.ada.enabled=true", "trainer.ada.speed=5", "trainer.ada.target=0.0"), run)
    p = [row["ada/p"] for row in logged(run) if "ada/p" in row]
    assert len(p) == 4 and p[-1] > p[0] and 0 < p[-1] <= 1  # D is sure of 16 reals: r_t > 0 pushes p up
    with pytest.raises(ConfigError, match=r"trainer\.ada\.enabled=true.*points"):
        train(compose_cfg(*FAST, *TINY_MLP_RING, "trainer.ada.enabled=true"), tmp_path / "points")
    with pytest.raises(ConfigError, match=r"trainer\.ada\.pipeline"):
        train(compose_cfg(*FAST, *TINY_DCGAN, "trainer.ada.enabled=true", "trainer.ada.pipeline=xyz"), tmp_path / "p")
    with pytest.raises(ConfigError, match=r"trainer\.ada\.enabled=true is not supported by the pix2pix game"):
        train(compose_cfg(*FAST, "model=pix2pix", "dataset=digits_edges", "trainer.ada.enabled=true"), tmp_path / "x")


def test_the_doctor_calls_a_sure_d_memorising_when_held_out_reals_score_like_fakes_and_ada_is_off():
    def findings(stats: dict, extra: dict | None) -> list[str]:
        doctor = Doctor(DoctorConfig(warmup_steps=0, window=3), probabilities=True, wasserstein=False)
        return [f.symptom for step in range(1, 5) for f in doctor.observe(step, stats, extra)]

    assert findings({"ada/rt": 0.9}, {"r_v": 0.7}) == ["memorising"]
    assert findings({"ada/rt": 0.9}, {"r_v": 0.1}) == []  # sure of the reals, but of unseen ones too: ahead of G
    assert findings({"ada/rt": 0.9}, None) == []  # no held-out reals: r_t alone cannot tell
    assert findings({"ada/rt": 0.2}, {"r_v": 0.7}) == []
    assert findings({"ada/rt": 0.9, "ada/p": 0.3}, {"r_v": 0.7}) == []  # ADA is on: it is the remedy


def test_a_subset_keeps_the_rest_as_held_out_reals_and_the_doctor_scores_them(tmp_path):
    """dataset.subset=N: the next items of the fixed shuffle are held out (never trained on); each log step
    logs D's r_v on them, and a run on all the data has none to log."""
    data = build_dataset(compose_cfg(*TINY_DCGAN, "dataset.subset=100").dataset)
    whole = build_dataset(compose_cfg(*TINY_DCGAN).dataset)
    trained = {tuple(x.flatten().tolist()) for x in data.dataset.tensors[0]}
    held = [tuple(x.flatten().tolist()) for x in data.heldout.tensors[0]]
    assert len(held) == 128 and not trained & set(held) and whole.heldout is None
    run = tmp_path / "run"
    train(compose_cfg(*FAST, *TINY_DCGAN, "dataset.subset=100", "trainer.max_steps=20", "trainer.log_every=10"), run)
    r_v = [row["health/r_v"] for row in logged(run) if "health/r_v" in row]
    assert len(r_v) == 2 and all(math.isfinite(v) for v in r_v)
    train(compose_cfg(*FAST, *TINY_DCGAN), tmp_path / "all")
    assert not [row for row in logged(tmp_path / "all") if "health/r_v" in row]


def test_consistency_transform_flips_and_shifts_whole_images():
    torch.manual_seed(0)
    x = torch.arange(4 * 16 * 16, dtype=torch.float32).reshape(4, 1, 16, 16).repeat(64, 1, 1, 1)
    out = consistency_transform(x)
    assert out.shape == x.shape
    centre = out[:, :, 4:12, 4:12]  # 2-pixel shifts at most: the centre comes from the image, flipped or not
    values = [set(img.unique().tolist()) <= set(src.unique().tolist()) for img, src in zip(centre, x)]
    assert all(values)
    assert (out != x).flatten(1).any(1).float().mean() > 0.5  # most images moved


# ---------------------------------------------------------------- FreezeD through the trainer

@pytest.mark.parametrize("overrides", [TINY_DCGAN, ["model=stylegan", "model.latent_dim=8", "model.w_dim=8",
                                                    "dataset=digits", "dataset.resolution=16", "model.g_width=4",
                                                    "model.d_width=4"]], ids=["dcgan", "stylegan"])
def test_freeze_d_keeps_the_first_blocks_as_they_started(overrides, tmp_path):
    from gan_cli.engine.networks import build_models

    cfg = compose_cfg(*FAST, *overrides, "model.freeze_d=1", "trainer.max_steps=3")
    torch.manual_seed(cfg.trainer.seed)
    start = build_models(cfg.model, "image", (1, 16, 16), 10).networks["D"]
    train(cfg, tmp_path / "run")
    trained = last(tmp_path / "run")["networks"]["D"]
    frozen = {n for n, p in start.named_parameters() if any(p is q for q in input_blocks(start)[0].parameters())}
    assert frozen
    for name, param in start.named_parameters():
        same = torch.equal(param.detach(), trained[name])
        assert same == (name in frozen), name


def test_freeze_d_out_of_range_names_the_number_of_blocks(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.freeze_d must be an integer from 1 to \d.*blocks"):
        train(compose_cfg(*FAST, *TINY_DCGAN, "model.freeze_d=99"), tmp_path / "run")


# ---------------------------------------------------------------- fine-tuning from another run

@pytest.fixture(scope="module")
def source(tmp_path_factory):
    run = tmp_path_factory.mktemp("source") / "run"
    train(compose_cfg(*FAST, *TINY_DCGAN, "trainer.ema.enabled=true"), run)
    return run


def test_init_from_starts_at_step_zero_with_the_source_weights(source, tmp_path):
    run = tmp_path / "tuned"
    train(compose_cfg(*FAST, *TINY_DCGAN, "trainer.ema.enabled=true", f"trainer.init_from={source}",
                      "trainer.max_steps=1", "optimizer.generator.lr=0", "optimizer.discriminator.lr=0",
                      "trainer.ema.decay=0.0"), run)
    tuned, original = last(run), last(source)
    assert tuned["step"] == 1 and tuned["ema_updates"] == 1  # fresh counters
    for name in ("G", "D"):  # lr 0: the weights are the source's
        for key, value in original["networks"][name].items():
            if value.is_floating_point() and "running" not in key:
                assert torch.equal(tuned["networks"][name][key], value), key
    assert [row["step"] for row in logged(run)] == [1]  # its own logs, from step 1


def test_init_from_refuses_what_cannot_fit(source, tmp_path):
    with pytest.raises(CheckpointError, match=r"trainer\.init_from"):
        train(compose_cfg(*FAST, *TINY_DCGAN, f"trainer.init_from={tmp_path / 'nothing'}"), tmp_path / "a")
    with pytest.raises(ConfigError, match=r"noise-to-image run.*translation run"):
        train(compose_cfg(*FAST, "model=pix2pix", "dataset=digits_edges", f"trainer.init_from={source}"),
              tmp_path / "b")
    with pytest.raises(ConfigError, match=r"shape \(1, 16, 16\).*\(1, 32, 32\)"):
        train(compose_cfg(*FAST, *TINY_DCGAN, "dataset.resolution=32", f"trainer.init_from={source}"), tmp_path / "c")
    with pytest.raises(ConfigError, match=r"differ in shape.*D\..*init_strict=false"):
        train(compose_cfg(*FAST, *TINY_DCGAN, "model.d_width=16", f"trainer.init_from={source}"), tmp_path / "d")


def test_init_strict_false_keeps_changed_layers_and_names_them(source, tmp_path, capsys):
    train(compose_cfg(*FAST, *TINY_DCGAN, "model.d_width=16", f"trainer.init_from={source}", "trainer.init_strict=false",
                      "trainer.max_steps=1"), tmp_path / "run")
    out = capsys.readouterr().out.replace("\n", "")
    assert "Left at their initial values" in out and "D.main.0.weight (8x1x4x4 -> 16x1x4x4)" in out


# ---------------------------------------------------------------- subsets

def test_subset_is_the_first_n_of_a_fixed_shuffle_and_heldout_stays_whole():
    def digits(*overrides):
        return build_dataset(compose_cfg("dataset=digits", "dataset.resolution=8", *overrides).dataset)

    whole, small, larger = digits("dataset.split=train"), digits("dataset.split=train", "dataset.subset=100"), \
        digits("dataset.split=train", "dataset.subset=500")
    assert (len(whole), len(small), len(larger)) == (1438, 100, 500)
    rows = lambda d: {tuple(x.flatten().tolist()) for x in d.dataset.tensors[0]}  # noqa: E731
    assert rows(small) <= rows(larger) <= rows(whole)
    assert small.fingerprint != whole.fingerprint
    from gan_cli.metrics.evaluate import heldout_config

    cfg = compose_cfg("dataset=digits", "dataset.split=train", "dataset.subset=100").dataset
    assert len(build_dataset(heldout_config(cfg))) == 359
    five = digits("dataset.classes=[5,6,7,8,9]", "dataset.subset=100")
    assert set(five.dataset.tensors[1].tolist()) == {5, 6, 7, 8, 9} and len(five) == 100
    with pytest.raises(ConfigError, match=r"dataset\.subset must be an integer from 1 to 1797"):
        digits("dataset.subset=5000")
    with pytest.raises(ConfigError, match=r"dataset\.classes=.*from 0 to 9"):
        digits("dataset.classes=[12]")


def test_the_small_data_recipe_trains_with_ada_on_500_digits(tmp_path):
    cfg = compose_cfg("experiment=small_data", *FAST, "trainer.max_steps=2", "dataset.resolution=16")
    assert cfg.trainer.ada.enabled and cfg.dataset.subset == 500 and cfg.model.game.r1_gamma == 0.01
    train(cfg, tmp_path / "run")
    assert "ada" in last(tmp_path / "run")
