"""Every game in every precision and compiled, with CUDA's autocast rules emulated on the CPU;
state stays fp32; no host synchronisation inside a training step; backend flags are given back."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from gan_cli.engine.cuda_autocast import cuda_autocast_on_cpu
from gan_cli.engine.device import claimed_gpu
from gan_cli.engine.backends import backend_state, configure_backends, restore_backends
from gan_cli.engine.optimizers import takes_fused
from gan_cli.engine.trainer import Trainer, train
from tests.conftest import FAST, compose_cfg, run_gan
from tests.host_syncs import HostSyncs

TINY = ["model.g_width=4", "model.d_width=4", "dataset.resolution=16", "trainer.batch_size=8", "trainer.max_steps=2",
        "trainer.num_samples=8"]
NOISE = [*TINY, "dataset=digits", "model.latent_dim=8"]
GAMES = {  # each game with its default loss, and the penalty run beside it (None: its own R1 is built in)
    "dcgan": ([*NOISE, "model=dcgan"], "loss=wgan_gp"),
    "cgan": ([*NOISE, "model=cgan"], "penalty=r1"),
    "resnet": ([*NOISE, "model=resnet"], "penalty=r1"),
    "sagan": ([*NOISE, "model=sagan"], "penalty=gp"),
    "stylegan": ([*NOISE, "model=stylegan", "model.w_dim=8", "model.game.r1_every=2", "model.game.pl_every=2"], None),
    "progan": ([*NOISE, "model=progan", "trainer.max_steps=4", "model.game.stable_steps=[1,0,1]",
                "model.game.fade_steps=1"], "penalty=r1"),
    "biggan": ([*NOISE, "model=biggan"], "penalty=dragan"),
    "pix2pix": ([*TINY, "model=pix2pix", "model.d_layers=2", "dataset=digits_edges"], "penalty=r1"),
    "cyclegan": ([*TINY, "model=cyclegan", "model.d_layers=2", "dataset=digits_unpaired"], "penalty=r2"),
}
COMPILE = ["trainer.compile=true", "trainer.compile_backend=aot_eager"]  # AOTAutograd's graphs, without inductor's C++
COMPILE_SMALLER = {"progan": ["dataset.resolution=8", "trainer.max_steps=3", "model.game.stable_steps=[1,1]"]}
MODES = {"fp32": [], "bf16": ["trainer.precision=bf16"], "fp16": ["trainer.precision=fp16"], "compile": COMPILE}
# compiled: with the penalty where the game takes one (the double backward is what compile cannot do)
CASES = [(game, mode, mode == "compile" and penalty is not None) for game, (_, penalty) in GAMES.items()
         for mode in MODES] + [(game, "bf16", True) for game, (_, penalty) in GAMES.items() if penalty]


def non_fp32(tree, path=""):
    """Paths of floating tensors in a checkpoint that are not fp32."""
    if isinstance(tree, torch.Tensor):
        return [path] if tree.is_floating_point() and tree.dtype != torch.float32 else []
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in non_fp32(v, f"{path}.{k}")]
    if isinstance(tree, (list, tuple)):
        return [p for i, v in enumerate(tree) for p in non_fp32(v, f"{path}[{i}]")]
    return []


def test_the_emulation_casts_as_cuda_does_and_only_inside():
    x = torch.randn(2, 3, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = F.conv2d(x, torch.randn(3, 3, 1, 1))
        assert F.interpolate(y, scale_factor=2).dtype == torch.bfloat16  # CPU autocast keeps bf16
    with cuda_autocast_on_cpu(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = F.conv2d(x, torch.randn(3, 3, 1, 1))
        assert y.dtype == torch.bfloat16
        assert F.interpolate(y, scale_factor=2).dtype == torch.float32  # CUDA runs upsampling in fp32
        assert y.sum().dtype == torch.float32 and F.softmax(y, 1).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert F.interpolate(F.conv2d(x, torch.randn(3, 3, 1, 1)), scale_factor=2).dtype == torch.bfloat16


@pytest.mark.parametrize("game, mode, penalty", CASES, ids=[f"{g}-{m}{'-penalty' if p else ''}" for g, m, p in CASES])
def test_every_game_trains_in_every_precision_and_compiled(game, mode, penalty, tmp_path):
    overrides, penalty_override = GAMES[game]
    smaller = COMPILE_SMALLER.get(game, []) if mode == "compile" else []  # fewer graphs to compile
    cfg = compose_cfg(*FAST, *overrides, *MODES[mode], *([penalty_override] if penalty else []), *smaller,
                      "trainer.log_every=1")
    with cuda_autocast_on_cpu():
        result = train(cfg, tmp_path)
    assert result["step"] == cfg.trainer.max_steps and math.isfinite(result["loss/D"])
    state = torch.load(tmp_path / "checkpoints/last.pt", weights_only=True)
    parts = {k: state[k] for k in ("networks", "ema", "optimizers", "game_state", "fixed")}
    assert non_fp32(parts) == []  # weights, EMA copies, optimizer state, w_avg, pl_mean, pools: fp32


QUIET = ["trainer.log_every=1000", "trainer.sample_every=1000", "trainer.ckpt_every=1000"]


def host_syncs(game: str, steps: int, tmp_path) -> dict:
    overrides = [*GAMES[game][0], *QUIET, f"trainer.max_steps={steps}"]
    if game == "progan":  # the same phases at both lengths: 4x4, fade to 8, fade to 16, then stable
        overrides += [f"model.game.stable_steps=[1,0,{steps - 3}]", "model.game.fade_steps=1"]
    with HostSyncs() as syncs:
        train(compose_cfg(*FAST, *overrides), tmp_path / str(steps))
    return syncs.counts


@pytest.mark.parametrize("game", list(GAMES))
def test_no_training_step_reads_a_tensor_on_the_host(game, tmp_path):
    """N and 2N steps (one log, sample and checkpoint step each: the last) read the device equally often:
    the steps between do not read it at all."""
    n = 4 if game == "progan" else 2
    short, long = host_syncs(game, n, tmp_path), host_syncs(game, 2 * n, tmp_path)
    assert short, "the counter saw none of the reads of the log step"
    assert {k: long[k] - short[k] for k in long if long[k] != short[k]} == {}


def test_the_sync_counter_sees_a_host_read(tmp_path):
    x = torch.ones(3)
    with HostSyncs() as syncs:
        float(x.sum()), bool(x.any()), x.nonzero(), x.tolist()
    assert syncs.counts["_local_scalar_dense"] >= 1 and syncs.counts["nonzero"] == 1
    assert syncs.counts["Tensor.tolist"] == 1


def test_fp16_overflow_is_a_skipped_step_not_a_divergence(tmp_path):
    """A grad scaler step that overflows is skipped (expected): no NaN grad norm reported, strict JSON."""
    cfg = compose_cfg(*FAST, *GAMES["dcgan"][0], "trainer.precision=fp16", "trainer.log_every=1", "trainer.max_steps=3")
    trainer = Trainer(cfg, tmp_path)
    for scaler in trainer.precision.scalers.values():
        scaler._init_scale = 2.0 ** 127  # every scaled loss overflows
    result = trainer.fit()
    assert result["step"] == 3
    rows = [json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in metrics.jsonl"))
            for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all("grad_norm/D" not in row and row["amp/scale/D"] < 2.0 ** 127 for row in rows)
    assert all(v is None or math.isfinite(v) for row in rows for v in row.values() if isinstance(v, float))


def test_fused_kernels_only_where_an_optimizer_has_them():
    assert takes_fused(torch.optim.Adam) and takes_fused(torch.optim.AdamW)
    assert not any(takes_fused(cls) for cls in (torch.optim.NAdam, torch.optim.RAdam, torch.optim.Adamax))


def test_backend_flags_are_given_back():
    before = backend_state()
    configure_backends(torch.device("cuda"), tf32=not torch.backends.cuda.matmul.allow_tf32, deterministic=True)
    assert backend_state() != before and torch.are_deterministic_algorithms_enabled()
    restore_backends(before)
    assert backend_state() == before


def test_a_run_leaves_the_process_as_it_found_it(tmp_path):
    before = backend_state()
    train(compose_cfg(*FAST, *GAMES["dcgan"][0], "trainer.deterministic=true"), tmp_path)
    assert backend_state() == before and not torch.are_deterministic_algorithms_enabled()


def test_a_compile_failure_falls_back_to_eager_with_one_message(tmp_path):
    out = run_gan("train", *FAST, *GAMES["dcgan"][0], "trainer.compile=true", f"hydra.run.dir={tmp_path}",
                  env={"CXX": "/nonexistent/g++", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")})
    assert out.returncode == 0, out.stderr[-2000:]
    text = " ".join(out.stdout.split())
    assert "trainer.compile: G runs eagerly" in text and "trainer.compile: D runs eagerly" in text
    assert "Traceback" not in out.stderr


def test_resume_on_another_device_type_continues_with_a_note(tmp_path):
    overrides = [*FAST, *GAMES["dcgan"][0]]
    train(compose_cfg(*overrides), tmp_path / "cuda")
    path = tmp_path / "cuda/checkpoints/last.pt"
    state = torch.load(path, weights_only=True)
    state["rng"].update(noise=torch.zeros(16, dtype=torch.uint8), noise_device="cuda",  # as a CUDA run saves them
                        cuda=[torch.zeros(16, dtype=torch.uint8)], cuda_per_rank=[torch.zeros(16, dtype=torch.uint8)])
    torch.save(state, path)
    out = run_gan("train", *overrides, "trainer.max_steps=4", f"trainer.resume={path}",
                  f"hydra.run.dir={tmp_path / 'cpu'}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "was saved on cuda and this run continues on cpu" in " ".join(out.stdout.split())


def test_sweep_jobs_never_share_a_gpu(tmp_path):
    import fcntl

    with open(tmp_path / "gan_cli-cuda0.lock", "a") as held:  # another job trains on cuda:0
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with claimed_gpu("auto", torch.device("cuda", 0), 2, gpu_count=2, lock_dir=tmp_path) as device:
            assert device == torch.device("cuda", 1)
            with claimed_gpu("auto", torch.device("cuda", 1), 3, gpu_count=2, lock_dir=tmp_path) as other:
                assert other == torch.device("cuda", 1)  # every GPU held: the preference, with a warning
    with claimed_gpu("auto", torch.device("cuda", 0), 2, gpu_count=2, lock_dir=tmp_path) as device:
        assert device == torch.device("cuda", 0)
    with claimed_gpu("cuda:1", torch.device("cuda", 1), 2, gpu_count=2, lock_dir=tmp_path) as device:
        assert device == torch.device("cuda", 1)  # an explicit device is kept


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("game", list(GAMES))
def test_cuda_bf16_steps_never_sync(game, tmp_path):
    """On a GPU: bf16 training steps under torch.cuda.set_sync_debug_mode("error")."""
    cfg = compose_cfg(*FAST, *GAMES[game][0], "trainer.device=cuda", "trainer.precision=bf16",
                      "trainer.sync_debug=error", *QUIET, "trainer.max_steps=8" if game != "progan" else
                      "trainer.max_steps=8", *(["model.game.stable_steps=[1,0,5]"] if game == "progan" else []))
    result = train(cfg, tmp_path)
    assert result["step"] == 8
    state = torch.load(tmp_path / "checkpoints/last.pt", weights_only=True)
    assert non_fp32({k: state[k] for k in ("networks", "ema", "optimizers", "game_state")}) == []
