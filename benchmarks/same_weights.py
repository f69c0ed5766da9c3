"""Same weights, bit for bit: every game and a few options against a stored reference.

A refactoring of the engine or the games must not change what a run computes. This trains each
case below for a few steps with a fixed seed and hashes every tensor of the final checkpoint's
networks, EMA copies and optimizer states; `same_weights.json` beside this file holds the hashes
the code gave when it was recorded, one set per CPU model and torch version (`machine()`).

    python benchmarks/same_weights.py            # compare with the reference; exit 1 on a difference
    python benchmarks/same_weights.py --record   # record the reference (after a deliberate change)

The runs use one thread and torch's and oneDNN's AVX2 kernels, so that machines with and without
AVX-512 compute the same bits (the variables must be set before torch loads: the script re-runs
itself with them).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REFERENCE = Path(__file__).with_name("same_weights.json")
PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1"}

BASE = ["trainer.max_steps=4", "trainer.batch_size=8", "trainer.log_every=2", "trainer.sample_every=1000",
        "trainer.ckpt_every=1000", "trainer.num_samples=8", "trainer.num_workers=0", "trainer.device=cpu",
        "trainer.doctor.enabled=false", "model.g_width=4", "model.d_width=4", "dataset.resolution=16"]
NOISE = [*BASE, "dataset=digits", "model.latent_dim=8"]
CASES = {
    "mlp": ["trainer.max_steps=4", "trainer.batch_size=16", "trainer.num_workers=0", "trainer.device=cpu",
            "trainer.doctor.enabled=false", "model=mlp", "model.hidden_dim=16", "model.latent_dim=4",
            "dataset=ring8", "dataset.num_samples=256"],
    "dcgan": [*NOISE, "model=dcgan"],
    "dcgan_options": [*NOISE, "model=dcgan", "trainer.ema.enabled=true", "trainer.n_critic=2", "penalty=r1",
                      "trainer.augment=[color,translation,cutout]", "trainer.mode_seeking=1.0"],
    "wgan_gp": [*NOISE, "model=dcgan", "loss=wgan_gp", "optimizer=adam_wgan", "trainer.n_critic=2"],
    "cgan": [*NOISE, "model=cgan"],
    "resnet": [*NOISE, "model=resnet", "loss=hinge"],
    "sagan": [*NOISE, "model=sagan", "penalty=gp"],
    "stylegan": [*NOISE, "model=stylegan", "model.w_dim=8", "model.game.r1_every=2", "model.game.pl_every=2"],
    "progan": [*NOISE, "model=progan", "model.game.stable_steps=[1,0,1]", "model.game.fade_steps=1"],
    "biggan": [*NOISE, "model=biggan", "model.game.ortho_weight=0.0001"],
    "dcgan_more": [*NOISE, "model=dcgan", "loss=lsgan", "penalty=dragan", "trainer.unroll_steps=2",
                   "trainer.instance_noise=0.1", "model.minibatch=stddev", "optimizer=ttur"],
    "wgan_clip": [*NOISE, "model=dcgan", "loss=wgan", "optimizer=rmsprop", "trainer.n_critic=3"],
    "stylegan_wgan_gp": [*NOISE, "model=stylegan", "model.w_dim=8", "loss=wgan_gp", "model.game.r1_gamma=0",
                         "model.game.pl_every=2", "trainer.ema.enabled=false"],
    "progan_r1": [*NOISE, "model=progan", "model.game.stable_steps=[1,0,1]", "model.game.fade_steps=1",
                  "loss=nonsaturating", "penalty=r1"],
    "pix2pix": [*BASE, "model=pix2pix", "model.d_layers=2", "dataset=digits_edges"],
    "cyclegan": [*BASE, "model=cyclegan", "model.d_layers=2", "dataset=digits_unpaired", "model.game.pool_size=4"],
}


def fingerprint(state: dict) -> str:
    """sha256 over every tensor (name, dtype, shape, bytes) of the networks, EMA copies and optimizers."""
    import torch

    digest = hashlib.sha256()

    def visit(prefix: str, value) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{prefix}:{t.dtype}:{tuple(value.shape)}".encode())
            digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(value, dict):
            for k in sorted(value, key=str):
                visit(f"{prefix}.{k}", value[k])
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                visit(f"{prefix}[{i}]", v)
        elif isinstance(value, (int, float, bool, str)) or value is None:
            digest.update(f"{prefix}={value!r}".encode())

    for part in ("networks", "ema", "optimizers"):
        visit(part, state[part])
    return digest.hexdigest()


def machine() -> str:
    """The CPU and torch the reference was recorded with: oneDNN's blocking can follow the cache sizes, so
    another CPU model may round differently even with the same kernels. A cloud CPU's name can be generic
    ("Intel(R) Xeon(R) Processor"): its family and model numbers say which one it is."""
    import platform

    import torch

    info = Path("/proc/cpuinfo")
    fields = dict(line.split(":", 1) for line in info.read_text().splitlines()[:30] if ":" in line) \
        if info.exists() else {}
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    name = fields.get("model name", platform.processor())
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']} model {fields.get('model', '?')})"
    return f"{name}; torch {torch.__version__}"


def run_cases(names: list[str]) -> dict[str, str]:
    import torch
    from hydra import compose, initialize_config_dir

    from gan_cli.config import config_dir, register_schema
    from gan_cli.engine.trainer import train
    from gan_cli.logging import console as ui

    register_schema()
    ui.console.quiet = True  # the verdicts below are the output
    hashes = {}
    for name in names:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose("train", overrides=CASES[name])
        with tempfile.TemporaryDirectory() as run:
            train(cfg, run)
            hashes[name] = fingerprint(torch.load(Path(run) / "checkpoints/last.pt", weights_only=True))
    return hashes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="write the reference instead of checking it")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, of: " + ",".join(CASES))
    parser.add_argument("--pinned", action="store_true", help=argparse.SUPPRESS)  # set by the re-run
    args = parser.parse_args()
    names = [n for n in args.cases.split(",") if n]
    if not args.pinned:  # re-run with the kernels pinned, before torch loads
        env = {**os.environ, **PINNED}
        return subprocess.call([sys.executable, __file__, "--pinned", *sys.argv[1:]], env=env, cwd=REPO)
    sys.path.insert(0, str(REPO))
    hashes = run_cases(names)
    stored = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {}
    if args.record:
        stored.setdefault(machine(), {}).update(hashes)
        REFERENCE.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(hashes)} case(s) for {machine()} in {REFERENCE}")
        return 0
    if machine() not in stored:
        print(f"no reference for {machine()} in {REFERENCE} (recorded on: {', '.join(stored)}); record one with "
              "--record at the commit before a change, then check after it")
        return 2
    reference = stored[machine()]
    differ = [n for n in names if n in reference and reference[n] != hashes[n]]
    for n in names:
        print(f"{n:16s} {'not recorded here' if n not in reference else 'DIFFERENT' if n in differ else 'same'}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
