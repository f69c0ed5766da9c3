"""Per-step time of each translation game in `gan train` against the same game as a plain PyTorch loop.

The plain loops are written out by hand from the papers (Pix2Pix: BCE + 100 x L1, D halved;
CycleGAN: least squares, cycle 10, identity 5, D halved, 50-image pools), on the same
networks (built by the same builders, same seed) and the same in-memory batches. Both run
in this process, in alternating rounds, after a warm-up; the tool's time is read from its
metrics.jsonl (wall time between log steps: progress bar, logging and statistics included).
The adversarial game's comparison is benchmarks/step_time.py.

    python benchmarks/game_step_time.py                       # both games, their experiments' networks, 32 px, batch 16
    python benchmarks/game_step_time.py --games pix2pix --resolution 64 --batch 8
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gan_cli.build import build  # noqa: E402
from gan_cli.data.selection import build_dataset  # noqa: E402
from gan_cli.engine.trainer import train  # noqa: E402
from gan_cli.games import split_model_config  # noqa: E402
from tests.conftest import compose_cfg  # noqa: E402

EXPERIMENT = {"pix2pix": "pix2pix_digits", "cyclegan": "cyclegan_digits"}  # the networks of each recipe


def setup(game: str, resolution: int):
    cfg = compose_cfg(f"experiment={EXPERIMENT[game]}", f"dataset.resolution={resolution}")
    data = build_dataset(cfg.dataset)
    torch.manual_seed(0)
    node, _, _ = split_model_config(cfg.model)
    nets = build("model", node, shape=tuple(data.shape), input_shape=tuple(data.input_shape), num_classes=10)
    return data, nets


def adam(*nets):
    return torch.optim.Adam([p for n in nets for p in n.parameters()], lr=2e-4, betas=(0.5, 0.999))


def pix2pix_step(nets, opts):
    G, D = nets["G"], nets["D"]
    opt_g, opt_d = opts

    def step(a, b):
        fake = G(a)
        real_out, fake_out = D(torch.cat([a, b], 1)), D(torch.cat([a, fake.detach()], 1))
        loss_d = 0.5 * (F.binary_cross_entropy_with_logits(real_out, torch.ones_like(real_out))
                        + F.binary_cross_entropy_with_logits(fake_out, torch.zeros_like(fake_out)))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        D.requires_grad_(False)
        out = D(torch.cat([a, fake], 1))
        loss_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out)) + 100 * (fake - b).abs().mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
    return step


class Pool:  # the official repo's ImagePool
    def __init__(self, size=50):
        self.size, self.images = size, []

    def query(self, images):
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.random() < 0.5:
                i = random.randrange(self.size)
                out.append(self.images[i])
                self.images[i] = image
            else:
                out.append(image)
        return torch.stack(out)


def cyclegan_step(nets, opts):
    G_ab, G_ba, D_a, D_b = nets["G_ab"], nets["G_ba"], nets["D_a"], nets["D_b"]
    opt_g, opt_d = opts
    pool_a, pool_b = Pool(), Pool()
    mse = lambda x, t: (x - t).pow(2).mean()  # noqa: E731

    def step(a, b):
        D_a.requires_grad_(False)
        D_b.requires_grad_(False)
        fake_b, fake_a = G_ab(a), G_ba(b)
        rec_a, rec_b = G_ba(fake_b), G_ab(fake_a)
        loss_g = (0.5 * mse(D_b(fake_b), 1) + 0.5 * mse(D_a(fake_a), 1)
                  + 10 * ((rec_a - a).abs().mean() + (rec_b - b).abs().mean())
                  + 5 * ((G_ab(b) - b).abs().mean() + (G_ba(a) - a).abs().mean()))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        D_a.requires_grad_(True)
        D_b.requires_grad_(True)
        loss_d = 0
        for D, real, fake in ((D_a, a, pool_a.query(fake_a)), (D_b, b, pool_b.query(fake_b))):
            loss_d = loss_d + 0.25 * (mse(D(real), 1) + mse(D(fake), 0))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
    return step


def plain_ms(game: str, resolution: int, batch: int, warmup: int, steps: int) -> float:
    data, nets = setup(game, resolution)
    tensors = data.dataset.tensors
    opts = (adam(nets["G"]), adam(nets["D"])) if game == "pix2pix" else (
        adam(nets["G_ab"], nets["G_ba"]), adam(nets["D_a"], nets["D_b"]))
    step = (pix2pix_step if game == "pix2pix" else cyclegan_step)(nets, opts)
    g = torch.Generator().manual_seed(0)
    start = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        idx = torch.randint(len(tensors[0]), (batch,), generator=g)
        step(tensors[0][idx], tensors[1][idx])
    return (time.perf_counter() - start) / steps * 1000


def tool_ms(game: str, resolution: int, batch: int, warmup: int, steps: int) -> float:
    run = Path(tempfile.mkdtemp(prefix="gan_bench_"))
    try:
        cfg = compose_cfg(f"experiment={EXPERIMENT[game]}", f"dataset.resolution={resolution}", f"trainer.batch_size={batch}",
                          f"trainer.max_steps={warmup + steps}", f"trainer.log_every={warmup}",
                          f"trainer.sample_every={10**9}", f"trainer.ckpt_every={10**9}", "trainer.device=cpu",
                          "trainer.num_workers=0")
        train(cfg, run)
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        first, last = lines[0], lines[-1]
        return (last["time"] - first["time"]) / (last["step"] - first["step"]) * 1000
    finally:
        shutil.rmtree(run, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", nargs="+", default=["pix2pix", "cyclegan"], choices=list(EXPERIMENT))
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    assert args.steps % args.warmup == 0, "--steps must be a multiple of --warmup"
    rows = []
    for game in args.games:
        plain, tool = [], []
        for r in range(args.rounds):
            plain.append(plain_ms(game, args.resolution, args.batch, args.warmup, args.steps))
            tool.append(tool_ms(game, args.resolution, args.batch, args.warmup, args.steps))
            print(f"{game} round {r + 1}: plain {plain[-1]:.1f} ms/step, gan train {tool[-1]:.1f} ms/step", flush=True)
        rows.append((game, statistics.median(plain), statistics.median(tool)))
    print(f"\n{args.resolution} px, batch {args.batch}, cpu, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| game | plain loop ms/step | gan train ms/step | ratio tool / plain |\n|---|---|---|---|")
    for game, p, t in rows:
        print(f"| {game} | {p:.1f} | {t:.1f} | {t / p:.3f} |")


if __name__ == "__main__":
    main()
