"""ADA's augmentation pipeline (Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data"): AugmentPipe of NVlabs/stylegan2-ada-pytorch, training/augment.py, in pure PyTorch and
without host reads, so that the trainer can run it inside every step, on every image D sees.

  PIPELINES                      name -> probability multiplier of each transform (train.py's augpipe_specs)
  check_pipeline(name)           a pipeline's multipliers; an unknown name is a ConfigError (trainer.ada.pipeline)
  ada_augment(x, p, strengths)   one augmented batch (B, C, H, W) in [-1, 1], C 1 or 3; p a 0-dim tensor

Each transform fires per sample where a uniform draw < multiplier * p, in AugmentPipe's order: pixel
blitting (xflip, rotate90, xint), general geometric (scale, rotate, aniso, rotate again, xfrac), colour
(brightness, contrast, lumaflip, hue, saturation; hue and saturation skipped for 1 channel), then noise
and cutout. The strengths below are AugmentPipe's defaults, SYM6 its `wavelets['sym6']`. Randomness
comes from torch's global RNG on x's device, which a checkpoint restores for an exact resume.

The maths is AugmentPipe's; how it runs differs where the reference reads the device on the host:
  * Pixel blitting is one gather, exact, filling uncovered pixels by reflection (the reference resamples
    blits along with the general geometric transforms, and its asymmetric sym6 filter blurs flips and
    quarter turns slightly). With general geometric transforms, that gather also makes the reflected
    band around the image that the resampler reads.
  * The resampler is the reference's (reflect padding, 2x upsampling with sym6, bilinear grid_sample,
    2x downsampling), but pads and upsamples only PAD pixels around the image, where the reference pads
    by a margin up to the image size that it computes on the host from the batch's transforms. Sample
    points further than BAND pixels outside the image are mirrored back into it: the same reflection,
    made after upsampling instead of before (they differ by sym6's slight asymmetry, in the padding
    only: a few percent of the range on smooth images). Points further out than the reference's
    largest margin (size - 1 pixels), where it reads zeros, see the reflection go on for a few pixels
    before the zeros (at p = 1, corners of about 1% of the images).
  * Matrices and resampling run in float32 with autocast off; the result takes x's dtype.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_cli.errors import ConfigError

__all__ = ["PIPELINES", "check_pipeline", "ada_augment"]

XINT_MAX = 0.125       # integer translation: uniform within +-0.125 of the image size
SCALE_STD = 0.2        # isotropic scaling: log2 standard deviation
ROTATE_MAX = 1.0       # arbitrary rotation: uniform within +-ROTATE_MAX half-turns (1: the full circle)
ANISO_STD = 0.2        # anisotropic scaling: log2 standard deviation
XFRAC_STD = 0.125      # fractional translation: standard deviation, relative to the image size
BRIGHTNESS_STD = 0.2   # additive brightness: standard deviation
CONTRAST_STD = 0.5     # contrast: log2 standard deviation
HUE_MAX = 1.0          # hue rotation about the luma axis: uniform within +-HUE_MAX half-turns
SATURATION_STD = 1.0   # saturation: log2 standard deviation
NOISE_STD = 0.1        # additive Gaussian noise: its std is |N(0, 1)| * NOISE_STD per image
CUTOUT_SIZE = 0.5      # cutout: side of the zeroed rectangle, relative to the image size
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)
PAD = 7                # pixels reflect-padded around the image before upsampling: exact from 4 pixels out
BAND = 3.75            # sample points up to this far outside the image read that exact upsampled padding
CROP = 6               # upsampled samples dropped on each side: none of them is read
BORDER = 3             # extra output pixels resampled on each side for the downsampling filter (12 taps / 4)

_BLIT = {"xflip": 1.0, "rotate90": 1.0, "xint": 1.0}
_GEOM = {"scale": 1.0, "rotate": 1.0, "aniso": 1.0, "xfrac": 1.0}
_COLOR = {"brightness": 1.0, "contrast": 1.0, "lumaflip": 1.0, "hue": 1.0, "saturation": 1.0}
PIPELINES: dict[str, dict[str, float]] = {
    "blit": _BLIT, "geom": _GEOM, "color": _COLOR, "noise": {"noise": 1.0}, "cutout": {"cutout": 1.0},
    "bg": {**_BLIT, **_GEOM}, "bgc": {**_BLIT, **_GEOM, **_COLOR},
    "bgcn": {**_BLIT, **_GEOM, **_COLOR, "noise": 1.0},
    "bgcnc": {**_BLIT, **_GEOM, **_COLOR, "noise": 1.0, "cutout": 1.0},
}
TRANSFORMS = (*_BLIT, *_GEOM, *_COLOR, "noise", "cutout")


def check_pipeline(name: str) -> dict[str, float]:
    """The transform multipliers of a named pipeline (a copy); unknown name -> ConfigError."""
    if name not in PIPELINES:
        raise ConfigError(f"trainer.ada.pipeline={name!r} is not a pipeline; valid names are "
                          f"{', '.join(PIPELINES)} (bgc: blit + geom + color, the default).")
    return dict(PIPELINES[name])


def ada_augment(x: Tensor, p: Tensor, strengths: Mapping[str, float]) -> Tensor:
    """x (B, C, H, W) augmented with probability multipliers `strengths` at probability p (a 0-dim
    tensor on x's device). Same shape and dtype as x; computed in float32; differentiable in x."""
    B, C, H, W = x.shape
    if C not in (1, 3):
        raise ConfigError(f"trainer.ada augments images with 1 or 3 channels; these have {C}. "
                          f"Set trainer.ada.enabled=false for this dataset.")
    unknown = sorted(set(strengths) - set(TRANSFORMS))
    if unknown:
        raise ConfigError(f"trainer.ada: unknown transform(s) {unknown}; valid: {', '.join(TRANSFORMS)}.")
    m = {name: float(v) for name, v in strengths.items() if v}
    p = p.to(torch.float32)
    with _autocast_off(x.device):
        y = _geometric(x.to(torch.float32), p, m)
        if any(name in m for name in _COLOR):
            y = _apply_colour(y, _colour_matrix(B, C, p, m, x.device))
    if "noise" in m:
        sigma = _gate(torch.randn(B, 1, 1, 1, device=x.device).abs() * NOISE_STD, 0.0, m["noise"] * p)
        y = y + torch.randn_like(y) * sigma
    if "cutout" in m:
        y = y * _cutout_mask(B, H, W, m["cutout"] * p, x.device)
    return y.to(x.dtype)


def _autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """No autocast inside (convolutions and bmm would otherwise run in bf16 or fp16 within a
    trainer's autocast region): CUDA's autocast runs grid_sample in fp32 anyway."""
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def _gate(value: Tensor, identity: float, prob: Tensor) -> Tensor:
    """value (B, ...) where a fresh uniform draw, one per sample, is below prob; else identity."""
    draw = torch.rand((value.shape[0],) + (1,) * (value.dim() - 1), device=value.device)  # (B, 1, ...)
    return torch.where(draw < prob, value, identity)


# ------------------------------------------------------------------------------------ geometry
def _geometric(x: Tensor, p: Tensor, m: dict[str, float]) -> Tensor:
    """Pixel blitting, then the general geometric transforms (when the pipeline has any)."""
    B, _, H, W = x.shape
    dev = x.device
    flip = quarter = shift = None
    if "xflip" in m:
        flip = _gate(torch.floor(torch.rand(B, device=dev) * 2), 0.0, m["xflip"] * p)  # (B,) 0 or 1
    if "rotate90" in m:
        quarter = _gate(torch.floor(torch.rand(B, device=dev) * 4), 0.0, m["rotate90"] * p)  # (B,) 0..3
    if "xint" in m:
        t = (torch.rand(B, 2, device=dev) * 2 - 1) * XINT_MAX
        t = _gate(t, 0.0, m["xint"] * p)  # (B, 2)
        shift = torch.round(torch.stack([t[:, 0] * W, t[:, 1] * H], dim=1))  # (B, 2) whole pixels
    if not any(name in m for name in _GEOM):
        if flip is None and quarter is None and shift is None:
            return x
        return _gather(x, _blit_index(B, H, W, 0, flip, quarter, shift, dev))
    L, offset = _geometric_matrix(B, H, W, p, m, dev)  # the reference's G_inv = blit @ [L, offset]
    return _resample(_gather(x, _blit_index(B, H, W, PAD, flip, quarter, shift, dev)), L, offset)


def _reflect(c: Tensor, n: int) -> Tensor:
    """Whole-pixel coordinates c (float) folded into [0, n) by reflection about the first and last
    pixel, plus 1 (the image's place in a one-pixel zero frame); 0 (the frame) where c lies beyond
    one reflection: the reference pads by at most n - 1 pixels, then reads zeros."""
    folded = (n - 1) - ((n - 1) - c.abs()).abs()
    return torch.where((c >= 1 - n) & (c <= 2 * (n - 1)), folded + 1, 0.0)


def _blit_index(B: int, H: int, W: int, pad: int, flip: Tensor | None, quarter: Tensor | None,
                shift: Tensor | None, dev: torch.device) -> Tensor:
    """(B, H + 2 pad, W + 2 pad): for each pixel of the blitted image and of `pad` pixels around it,
    the pixel it shows of x in a one-pixel zero frame, flattened ((H + 2) (W + 2) pixels). The
    reference's x-flip @ rotate90 @ translate, output to input, in pixel coordinates centred on the
    image: (u, v) -> [[a, b], [c, d]] (u - tx, v - ty), one of a, b and one of c, d zero, so that the
    source column and row are each a sum of a function of u and one of v (1D tables, one broadcast add)."""
    cx, cy = (W - 1) / 2, (H - 1) / 2
    u = (torch.arange(W + 2 * pad, device=dev, dtype=torch.float32) - (pad + cx)).view(1, -1)  # (1, Wp)
    v = (torch.arange(H + 2 * pad, device=dev, dtype=torch.float32) - (pad + cy)).view(1, -1)  # (1, Hp)
    if shift is not None:
        u, v = u - shift[:, 0:1], v - shift[:, 1:2]  # (B, Wp), (B, Hp)
    cos, sin = torch.ones(B, 1, device=dev), torch.zeros(B, 1, device=dev)
    if quarter is not None:
        angle = quarter.view(B, 1) * (math.pi / 2)
        cos, sin = torch.round(torch.cos(angle)), torch.round(torch.sin(angle))  # (B, 1): -1, 0 or 1
    sign = 1 - 2 * flip.view(B, 1) if flip is not None else 1.0
    a, b, c, d = sign * cos, -sign * sin, sin, cos  # (B, 1) each: flip @ rotation

    def table(coef: Tensor, t: Tensor, centre: float, n: int) -> Tensor:  # coef^2 reflect(coef t + centre)
        return coef.square() * _reflect(torch.round(coef * t + centre), n)  # rounding: only odd H - W

    col_u, col_v = table(a, u, cx, W), table(b, v, cx, W)  # (B, Wp), (B, Hp)
    row_u, row_v = table(c, u, cy, H), table(d, v, cy, H)
    along_u = (row_u * (W + 2) + col_u).long()  # (B, Wp)
    along_v = (row_v * (W + 2) + col_v).long()  # (B, Hp)
    return along_u.view(B, 1, -1) + along_v.view(B, -1, 1)  # (B, Hp, Wp)


def _gather(x: Tensor, index: Tensor) -> Tensor:
    """x (B, C, H, W) in a one-pixel zero frame, read at index (B, Hp, Wp) of its flattened pixels."""
    B, C = x.shape[:2]
    flat = F.pad(x, [1, 1, 1, 1]).flatten(2)  # (B, C, (H + 2) (W + 2))
    return flat.gather(2, index.flatten(1).unsqueeze(1).expand(B, C, -1)).view(B, C, *index.shape[1:])


def _rotation(theta: Tensor) -> Tensor:
    """(B, 2, 2) rotations by theta (B,): the reference's rotate2d."""
    cos, sin = torch.cos(theta), torch.sin(theta)
    return torch.stack([cos, -sin, sin, cos], dim=1).view(-1, 2, 2)


def _geometric_matrix(B: int, H: int, W: int, p: Tensor, m: dict[str, float],
                      dev: torch.device) -> tuple[Tensor, Tensor]:
    """The general geometric transforms as p_in = L p_out + offset, output to input, in pixel
    coordinates centred on the image: L (B, 2, 2), offset (B, 2). The reference's G_inv chain:
    scale, rotate, aniso, rotate, translate, each the inverse of the image's transform."""
    L = torch.eye(2, device=dev).expand(B, 2, 2)  # (B, 2, 2)
    if "scale" in m:
        s = _gate(torch.exp2(torch.randn(B, device=dev) * SCALE_STD), 1.0, m["scale"] * p)  # (B,)
        L = L / s.view(B, 1, 1)
    if "rotate" in m:  # before and after aniso, each with p_rot: P(any rotation) = rotate * p
        p_rot = 1 - torch.sqrt((1 - m["rotate"] * p).clamp(0, 1))
        L = L @ _rotation(_gate((torch.rand(B, device=dev) * 2 - 1) * math.pi * ROTATE_MAX, 0.0, p_rot))
    if "aniso" in m:
        a = _gate(torch.exp2(torch.randn(B, device=dev) * ANISO_STD), 1.0, m["aniso"] * p)  # (B,)
        L = L * torch.stack([1 / a, a], dim=1).view(B, 1, 2)  # L @ diag(1/a, a)
    if "rotate" in m:
        L = L @ _rotation(_gate((torch.rand(B, device=dev) * 2 - 1) * math.pi * ROTATE_MAX, 0.0, p_rot))
    offset = torch.zeros(B, 2, device=dev)
    if "xfrac" in m:
        t = _gate(torch.randn(B, 2, device=dev) * XFRAC_STD, 0.0, m["xfrac"] * p)  # (B, 2)
        t = torch.stack([t[:, 0] * W, t[:, 1] * H], dim=1)  # (B, 2) pixels
        offset = -(L @ t.unsqueeze(2)).squeeze(2)
    return L, offset


# ----------------------------------------------------------------------------------- resampler
@lru_cache(maxsize=None)
def _sym6(device: torch.device) -> tuple[Tensor, Tensor]:
    """The separable sym6 lowpass as one 1D factor of (12, 12) normalised to sum 1 (upfirdn2d.setup_filter),
    for downsampling, and of 4 times it for upsampling (upfirdn2d's gain up ** 2): made once per device."""
    f = torch.tensor(SYM6, dtype=torch.float64)
    f = f / f.sum()
    return f.to(device, torch.float32), (2 * f).to(device, torch.float32)


@lru_cache(maxsize=64)
def _filter_matrix(n: int, transpose: bool, padding: int, device: torch.device) -> Tensor:
    """(n, m): the 1D stride-2 filtering of a length-n signal by the sym6 factor (conv_transpose1d to upsample,
    conv1d to downsample, with `padding`) as a matrix, x @ M: the filter applied to each unit vector."""
    down, up = _sym6(device)
    unit = torch.eye(n, device=device).unsqueeze(1)  # (n, 1, n)
    if transpose:
        return F.conv_transpose1d(unit, up.view(1, 1, -1), stride=2, padding=padding).squeeze(1)
    return F.conv1d(unit, down.view(1, 1, -1), stride=2, padding=padding).squeeze(1)


def _filter(x: Tensor, transpose: bool, padding: int) -> Tensor:
    """x (B, C, h, w) upsampled (transpose) or downsampled 2x by the separable sym6 filter: two matrix products,
    along W then H. Banded matrices waste multiply-adds, but a CPU runs them many times faster than the
    depthwise (transposed) convolutions they stand for, and their derivatives (R1's double backward too)
    are plain matrix products."""
    along_w = _filter_matrix(x.shape[-1], transpose, padding, x.device)  # (w, w')
    along_h = _filter_matrix(x.shape[-2], transpose, padding, x.device)  # (h, h')
    return along_h.T @ (x @ along_w)  # (B, C, h', w')


def _resample(P: Tensor, L: Tensor, offset: Tensor) -> Tensor:
    """The image inside P (B, C, H + 2 PAD, W + 2 PAD: PAD reflected pixels around it) resampled at
    p_in = L p_out + offset: 2x upsampling, bilinear grid_sample, 2x downsampling. (B, C, H, W)."""
    B, C, Hp, Wp = P.shape
    H, W = Hp - 2 * PAD, Wp - 2 * PAD
    # upfirdn2d.upsample2d less CROP samples a side: sample s of U sits at pixel (s + CROP) / 2 - PAD
    U = _filter(P, True, 5 + CROP)  # (B, C, 2 Hp - 2 CROP, 2 Wp - 2 CROP)
    S = F.grid_sample(U, _sample_grid(L, offset, H, W), mode="bilinear", padding_mode="zeros",
                      align_corners=False)  # (B, C, 2 H + 4 BORDER - 2, 2 W + 4 BORDER - 2)
    # upfirdn2d.downsample2d (flip_filter, padding -2 BORDER): output pixel k from samples 2k .. 2k + 11
    return _filter(S, False, 0)  # (B, C, H, W)


@lru_cache(maxsize=64)
def _output_samples(device: torch.device, n: int) -> Tensor:
    """(2 n + 4 BORDER - 2,) centred pixel coordinates of the output samples of a row that the
    downsampling reads (upfirdn2d.downsample2d with padding -2 BORDER): sample k at pixel (k + 1) / 2 - BORDER."""
    return (torch.arange(2 * n + 4 * BORDER - 2, device=device) + 1) / 2 - BORDER - (n - 1) / 2


@torch.no_grad()
def _sample_grid(L: Tensor, offset: Tensor, H: int, W: int) -> Tensor:
    """(B, Ho, Wo, 2) grid_sample coordinates in U of the output samples at p_in = L p_out + offset:
    a view of (2, B, Ho, Wo), each axis computed in place in a plane of its own (few, cache-warm passes)."""
    xo, yo = _output_samples(L.device, W), _output_samples(L.device, H)  # (Wo,), (Ho,)
    planes = torch.empty(2, L.shape[0], len(yo), len(xo), device=L.device)  # (2, B, Ho, Wo)
    scratch = torch.empty_like(planes[0])
    _sample_axis(L[:, 0], offset[:, 0], xo, yo, W, planes[0], scratch)
    _sample_axis(L[:, 1], offset[:, 1], xo, yo, H, planes[1], scratch)
    return planes.permute(1, 2, 3, 0)


def _sample_axis(row: Tensor, offset: Tensor, xo: Tensor, yo: Tensor, n: int, g: Tensor, e: Tensor) -> None:
    """Writes into g (B, Ho, Wo) one coordinate of the sample points, row (B, 2) @ (xo, yo) + offset (B,)
    in centred pixels, in grid_sample units of U along an axis of n pixels (e: scratch). Points
    further than BAND pixels outside the image are mirrored about its first or last pixel. In-place
    clamp, sign and arithmetic with scalars only: on the CPU, where() is many times slower."""
    B = row.shape[0]
    size = 2 * (n + 2 * PAD) - 2 * CROP  # U's samples along the axis
    per_pixel = 4 / size  # grid units (align_corners=False: sample s at (2 s + 1) / size - 1)

    def at(c: float) -> float:  # pixel c of the image (sample 2 (c + PAD) - CROP of U), in grid units
        return (4 * (c + PAD) - 2 * CROP + 1) / size - 1

    along_x = (per_pixel * row[:, 0:1]) * xo + (per_pixel * offset + at((n - 1) / 2)).view(B, 1)  # (B, Wo)
    torch.add(along_x.view(B, 1, -1), ((per_pixel * row[:, 1:2]) * yo).view(B, -1, 1), out=g)  # (B, Ho, Wo)
    torch.sub(g, torch.clamp(g, at(-BAND), at(n - 1 + BAND), out=e), out=e)  # signed distance past the band
    g.sub_(e, alpha=2).sub_(e.sign_(), alpha=2 * per_pixel * BAND)  # mirrored about pixel 0 or n - 1


# -------------------------------------------------------------------------------------- colour
@lru_cache(maxsize=None)
def _colour_constants(device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(4, 4) each, in homogeneous RGB, made once per device: the identity; v v^T for the luma axis
    v = (1, 1, 1, 0) / sqrt(3); I - v v^T on RGB (zero homogeneous row and column); v's cross-product
    matrix [v]x; ones in the translation column (the direction of brightness)."""
    eye = torch.eye(4, device=device)
    a = 3 ** -0.5
    vv = F.pad(torch.full((3, 3), a * a, device=device), [0, 1, 0, 1])
    perp = F.pad(torch.eye(3, device=device), [0, 1, 0, 1]) - vv
    cross = torch.zeros(4, 4, device=device)
    cross[0, 1], cross[0, 2], cross[1, 0], cross[1, 2], cross[2, 0], cross[2, 1] = -a, a, a, -a, -a, a
    bright = torch.zeros(4, 4, device=device)
    bright[:3, 3] = 1.0
    return eye, vv, perp, cross, bright


def _colour_matrix(B: int, C: int, p: Tensor, m: dict[str, float], dev: torch.device) -> Tensor:
    """(B, 4, 4) colour transforms, colour_in to colour_out: brightness, contrast, luma flip, then (RGB
    only) hue rotation about the luma axis and saturation. M's last row stays (0, 0, 0, 1)."""
    eye, vv, perp, cross, bright = _colour_constants(dev)
    M = eye.expand(B, 4, 4)
    if "brightness" in m:
        b = _gate(torch.randn(B, device=dev) * BRIGHTNESS_STD, 0.0, m["brightness"] * p)  # (B,)
        M = M + b.view(B, 1, 1) * bright  # translate3d(b, b, b) @ M
    if "contrast" in m:
        c = _gate(torch.exp2(torch.randn(B, device=dev) * CONTRAST_STD), 1.0, m["contrast"] * p)
        M = M * torch.stack([c, c, c, torch.ones_like(c)], dim=1).view(B, 4, 1)  # scale3d(c, c, c) @ M
    if "lumaflip" in m:
        i = _gate(torch.floor(torch.rand(B, device=dev) * 2), 0.0, m["lumaflip"] * p)  # (B,) 0 or 1
        M = (eye - 2 * vv * i.view(B, 1, 1)) @ M  # Householder reflection about the luma axis
    if "hue" in m and C > 1:
        theta = _gate((torch.rand(B, device=dev) * 2 - 1) * math.pi * HUE_MAX, 0.0, m["hue"] * p).view(B, 1, 1)
        M = (eye - perp + torch.cos(theta) * perp + torch.sin(theta) * cross) @ M  # rotate3d(v, theta) @ M
    if "saturation" in m and C > 1:
        s = _gate(torch.exp2(torch.randn(B, device=dev) * SATURATION_STD), 1.0, m["saturation"] * p)
        M = (eye - perp + s.view(B, 1, 1) * perp) @ M  # (v v^T + (I - v v^T) s) @ M
    return M


def _apply_colour(x: Tensor, M: Tensor) -> Tensor:
    """x (B, C, H, W) through M (B, 4, 4); for 1 channel the reference's mean of M's RGB rows."""
    B, C, H, W = x.shape
    x = x.reshape(B, C, H * W)
    if C == 3:
        x = torch.baddbmm(M[:, :3, 3:], M[:, :3, :3], x)  # (B, 3, H*W)
    else:
        Mg = M[:, :3, :].mean(dim=1, keepdim=True)  # (B, 1, 4)
        x = x * Mg[:, :, :3].sum(dim=2, keepdim=True) + Mg[:, :, 3:]
    return x.view(B, C, H, W)


# ----------------------------------------------------------------------------------- corruption
def _cutout_mask(B: int, H: int, W: int, prob: Tensor, dev: torch.device) -> Tensor:
    """(B, 1, H, W): 0 inside one rectangle of CUTOUT_SIZE x the image at a uniform centre, else 1."""
    size = _gate(torch.full((B, 2, 1, 1), CUTOUT_SIZE, device=dev), 0.0, prob)  # (B, 2, 1, 1)
    centre = torch.rand(B, 2, 1, 1, device=dev)
    xs = (torch.arange(W, device=dev) + 0.5).view(1, 1, W) / W
    ys = (torch.arange(H, device=dev) + 0.5).view(1, H, 1) / H
    outside_x = (xs - centre[:, 0]).abs() >= size[:, 0] / 2  # (B, 1, W)
    outside_y = (ys - centre[:, 1]).abs() >= size[:, 1] / 2  # (B, H, 1)
    return (outside_x | outside_y).unsqueeze(1).to(torch.float32)
