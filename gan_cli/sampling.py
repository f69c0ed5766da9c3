"""What `gan sample` does: a PNG grid or an .npz of samples from a trained generator (translations:
gan_cli.translate_sample). The Hydra app is gan_cli.sample, which imports this once the config is checked."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from gan_cli.data.embedded import MIXTURES, modes
from gan_cli.engine.device import resolve_device
from gan_cli.engine.restore import Restored, load_generator
from gan_cli.games.base import generate
from gan_cli.errors import ConfigError
from gan_cli.games.base import seeded
from gan_cli.hydra_app import ensure_parent, write_error
from gan_cli.logging.console import console
from gan_cli.logging.pictures import image_grid, plot_extent, save_picture, scatter_picture
from gan_cli.translate_sample import check_noise_run, translate
from gan_cli.truncation import check_supported, kind_of as truncation_kind, normal


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows a and b (B, D) at fractions t (T,) -> (B, T, D)."""
    a_n, b_n = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(1).clamp(-1, 1))[:, None, None]  # (B, 1, 1)
    t = t[None, :, None]
    so = torch.sin(omega).clamp_min(1e-8)
    return (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / so


MODES = ("random", "interp", "mixing")


def latents(cfg: DictConfig, latent_dim: int, z_truncation: float | None = None) -> tuple[torch.Tensor, int]:
    """z for the requested mode, and the grid's row length. `z_truncation`: psi of BigGAN's truncated z."""
    g = torch.Generator().manual_seed(cfg.seed)
    if cfg.mode == "random":
        return normal((cfg.num, latent_dim), g, z_truncation), int(math.ceil(math.sqrt(cfg.num)))
    if cfg.mode == "interp":
        rows = max(1, cfg.num // cfg.interp_steps)
        ends = normal((2, rows, latent_dim), g, z_truncation)
        z = slerp(ends[0], ends[1], torch.linspace(0, 1, cfg.interp_steps))  # (rows, steps, D)
        return z.reshape(-1, latent_dim), cfg.interp_steps
    raise ConfigError(f"mode={cfg.mode!r} is not a sampling mode. Valid: {', '.join(MODES)}.")


@torch.no_grad()
def mixing_grid(G: torch.nn.Module, num: int, seed: int, device: torch.device, truncation: float | None,
                crossover: int | None) -> tuple[torch.Tensor, int]:
    """StyleGAN's style-mixing figure, (n + 1)^2 images with n + 1 <= sqrt(num): the top row holds n sources of
    fine styles, the left column n sources of coarse styles, and cell (i, j) the styles of row source i before
    `crossover` (default: half of G's style inputs, the coarse resolutions) and of column source j from there on."""
    n = max(1, math.isqrt(num) - 1)
    crossover = G.num_ws // 2 if crossover is None else crossover
    if not 0 < crossover < G.num_ws:
        raise ConfigError(f"crossover={crossover} is not valid: this generator takes {G.num_ws} style inputs, so "
                          f"crossover must be 1 to {G.num_ws - 1} (unset: {G.num_ws // 2}).")
    z = torch.randn(2 * n, G.latent_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    with seeded(seed, device):  # the noise inputs
        w = G.mapping(z, truncation=truncation)[:, None].expand(-1, G.num_ws, -1)  # (2n, num_ws, w_dim)
        coarse, fine = w[:n], w[n:]
        mixed = torch.cat([coarse[:, None, :crossover].expand(-1, n, -1, -1),
                           fine[None, :, crossover:].expand(n, -1, -1, -1)], dim=2)  # (n, n, num_ws, w_dim)
        sources = G.synthesis(w).float().cpu()
        cells = G.synthesis(mixed.reshape(n * n, G.num_ws, -1)).float().cpu()
    blank = torch.full_like(sources[:1], -1.0)  # the corner: black
    rows = [torch.cat([blank, sources[n:]])]  # top row: the fine sources
    rows += [torch.cat([sources[i : i + 1], cells[i * n : (i + 1) * n]]) for i in range(n)]
    return torch.cat(rows), n + 1


def labels_for(cfg: DictConfig, run: Restored, num: int) -> torch.Tensor | None:
    classes = run.data["num_classes"]
    if cfg.label is None:
        return (torch.arange(num) % classes) if run.conditional else None
    if not run.conditional:
        raise ConfigError(f"label={cfg.label} needs a conditional model, but {run.checkpoint} holds an "
                          f"unconditional one; leave label unset.")
    if not 0 <= int(cfg.label) < classes:
        raise ConfigError(f"label={cfg.label} is not a class of this run: valid labels are 0 to {classes - 1}.")
    return torch.full((num,), int(cfg.label))


def write(samples: torch.Tensor, labels: torch.Tensor | None, run: Restored, out: Path, nrow: int) -> None:
    if out.suffix != ".npz" and out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ConfigError(f"out={out} must end in .png (an image grid) or .npz (raw arrays).")
    ensure_parent(out)
    try:
        _write(samples, labels, run, out, nrow)
    except OSError as e:
        raise write_error(out, e) from e


def _write(samples: torch.Tensor, labels: torch.Tensor | None, run: Restored, out: Path, nrow: int) -> None:
    if out.suffix == ".npz":
        arrays = {"samples": samples.numpy().astype(np.float32)}
        if labels is not None:
            arrays["labels"] = labels.numpy()
        np.savez(out, **arrays)
    elif out.suffix.lower() in (".png", ".jpg", ".jpeg"):
        if run.data["kind"] == "points":
            real = modes(run.data["name"])[0] if run.data["name"] in MIXTURES else samples[:0]  # (K, 2) centres
            picture = scatter_picture(samples, real, plot_extent(torch.cat([real, samples])))
        else:
            picture = image_grid(samples, nrow=nrow)
        save_picture(picture, out)


def sample(cfg: DictConfig) -> None:
    device = resolve_device(cfg.device)
    run = load_generator(cfg.ckpt, device, ema=cfg.ema)
    if run.game.translators:  # pix2pix / cyclegan: images in, not noise
        return translate(cfg, run, device)
    check_noise_run(cfg, run)
    G, psi = run.generator, cfg.get("truncation")
    check_supported(G, psi, run.model_name)
    if cfg.mode == "mixing":
        if not hasattr(G, "synthesis"):
            raise ConfigError(f"mode=mixing mixes styles: it needs a style-based generator (model=stylegan), but "
                              f"{run.checkpoint} holds model={run.model_name}. Use mode=random or mode=interp.")
        labels = labels_for(cfg, run, 0)  # label= for an unconditional model is an error in every mode
        samples, nrow = mixing_grid(G, cfg.num, cfg.seed, device, psi, cfg.get("crossover"))
    else:
        z, nrow = latents(cfg, run.latent_dim, psi if truncation_kind(G) == "z" else None)
        labels = labels_for(cfg, run, len(z))
        samples = generate(G, len(z), device, cfg.batch_size, cfg.seed, labels, z, psi)
    out = Path(cfg.out) if cfg.out else run.run_dir / "samples" / f"sample_{cfg.mode}_seed{cfg.seed}.png"
    write(samples, labels, run, out, nrow)
    console.print(f"wrote {len(samples)} samples {tuple(samples.shape[1:])} from step {run.step} "
                  f"({'EMA' if run.used_ema else 'live'} generator) to [bold]{out}[/]")
