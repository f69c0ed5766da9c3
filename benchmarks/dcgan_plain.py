"""pytorch/examples' DCGAN training loop (dcgan/main.py), compactly: the plain-PyTorch reference.

64x64x3 images, ngf = ndf = 64, nz = 100, BatchNorm, BCE on D's Sigmoid, Adam 2e-4 (0.5, 0.999),
one D update (real, then fake) and one G update per step. The data are random images already
on the device, so the figure is the model step alone. Needs nothing but torch.

    python benchmarks/dcgan_plain.py --device cuda --batch 256 --warmup 20 --steps 100
    python benchmarks/dcgan_plain.py --device cpu --batch 8 --flops

Prints one JSON line: {"img_s": ..., "batch": ..., "device": ..., ["flops_per_image": ...]}.
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

NZ, NGF, NDF, NC, SIDE = 100, 64, 64, 3, 64


def networks(nz: int = NZ, ngf: int = NGF, ndf: int = NDF, nc: int = NC) -> tuple[nn.Sequential, nn.Sequential]:
    """netG.main and netD.main of pytorch/examples, layer by layer (64x64 images)."""
    netg = nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
    )
    netd = nn.Sequential(
        nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
    )
    return netg, netd


def weights_init(m: nn.Module) -> None:
    """main.py's initialisation: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02) and biases 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class PlainDCGAN:
    """Networks, optimizers and main.py's training step."""

    def __init__(self, device: torch.device, batch: int):
        torch.manual_seed(0)
        self.G, self.D = (m.to(device).apply(weights_init) for m in networks())
        self.criterion = nn.BCELoss()
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.real_label = torch.full((batch,), 1.0, device=device)
        self.fake_label = torch.full((batch,), 0.0, device=device)
        self.device, self.batch = device, batch

    def step(self, real: torch.Tensor) -> None:  # real: (B, 3, 64, 64) in [-1, 1]
        self.D.zero_grad()
        self.criterion(self.D(real).view(-1), self.real_label).backward()
        fake = self.G(torch.randn(self.batch, NZ, 1, 1, device=self.device))  # (B, 3, 64, 64)
        self.criterion(self.D(fake.detach()).view(-1), self.fake_label).backward()
        self.opt_d.step()
        self.G.zero_grad()
        self.criterion(self.D(fake).view(-1), self.real_label).backward()
        self.opt_g.step()


def random_images(device: torch.device, n: int = 1024) -> torch.Tensor:
    return torch.rand(n, NC, SIDE, SIDE, device=device) * 2 - 1  # (n, 3, 64, 64)


def img_per_s(device: torch.device, batch: int, warmup: int, steps: int, images: torch.Tensor | None = None) -> float:
    """Images per second of the training step, timed over `steps` after `warmup` steps.

    Each step draws a batch from `images` (default: random images on the device)."""
    images = random_images(device) if images is None else images.to(device)
    gan = PlainDCGAN(device, batch)
    start = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        gan.step(images[torch.randint(len(images), (batch,), device=device)])
    sync(device)
    return steps * batch / (time.perf_counter() - start)


def flops_per_image(device: torch.device, batch: int = 16) -> float:
    """FLOPs of one training step per image (D on real and fake, G through D; forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    gan = PlainDCGAN(device, batch)
    real = random_images(device, batch)
    with FlopCounterMode(display=False) as counter:
        gan.step(real)
    return counter.get_total_flops() / batch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--flops", action="store_true", help="also count the FLOPs of one step per image")
    args = parser.parse_args()
    device = torch.device(args.device)
    result = {"img_s": img_per_s(device, args.batch, args.warmup, args.steps), "batch": args.batch,
              "device": args.device}
    if args.flops:
        result["flops_per_image"] = flops_per_image(device)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
