"""ADA's augmentation pipeline (gan_cli.engine.ada_augment): each transform does what AugmentPipe's
does, p gates it, the resampler matches the reference's where it can, and a call is fit for a training
step (no host reads, twice differentiable, seeded, dtype kept)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_cli.engine import ada_augment as ada
from gan_cli.engine.ada_augment import PIPELINES, ada_augment, check_pipeline
from gan_cli.errors import ConfigError
from tests.host_syncs import HostSyncs

P0, P1 = torch.tensor(0.0), torch.tensor(1.0)


def images(b: int, c: int, h: int, w: int | None = None, seed: int = 0) -> Tensor:
    """Uniform noise in [-1, 1]: no symmetry, so every flip, rotation and shift shows."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, h, w or h, generator=g) * 2 - 1


def smooth(b: int, c: int, h: int, seed: int = 0) -> Tensor:
    """Band-limited images in [-1, 1] (5 x 5 noise, bilinearly enlarged): what resampling is made for."""
    return F.interpolate(images(b, c, 5, seed=seed), size=(h, h), mode="bilinear", align_corners=False)


def max_per_image(t: Tensor) -> Tensor:
    return t.abs().flatten(1).amax(1)  # (B,)


# ------------------------------------------------------------------------------- pipelines
def test_check_pipeline_returns_the_multipliers_and_names_the_valid_ones():
    for name in ("blit", "geom", "color", "bg", "bgc", "bgcn", "bgcnc", "noise", "cutout"):
        assert check_pipeline(name) == PIPELINES[name] and all(v > 0 for v in PIPELINES[name].values())
    assert set(PIPELINES["bgc"]) == set(PIPELINES["bg"]) | set(PIPELINES["color"])
    assert set(PIPELINES["bgcnc"]) - set(PIPELINES["bgc"]) == {"noise", "cutout"}
    check_pipeline("bgc")["xflip"] = 0.0  # a copy: the table stays as it was
    assert PIPELINES["bgc"]["xflip"] == 1.0
    with pytest.raises(ConfigError, match=r"trainer\.ada\.pipeline") as err:
        check_pipeline("bgcf")
    assert all(name in str(err.value) for name in PIPELINES)


def test_other_channel_counts_and_unknown_transforms_are_config_errors():
    with pytest.raises(ConfigError, match=r"trainer\.ada.*2"):
        ada_augment(images(2, 2, 8), P1, PIPELINES["bgc"])
    with pytest.raises(ConfigError, match=r"trainer\.ada.*imgfilter"):
        ada_augment(images(2, 3, 8), P1, {"imgfilter": 1.0})


# ------------------------------------------------------------------------------ p gates it
@pytest.mark.parametrize("c, h, w", [(1, 16, 16), (3, 16, 16), (3, 12, 19)])
def test_p_zero_leaves_images_unchanged(c, h, w):
    x = images(8, c, h, w)
    for name in ("bgcnc", "blit", "geom"):
        assert (ada_augment(x, P0, PIPELINES[name]) - x).abs().max() < 1e-5, name


def test_half_p_flips_a_quarter_of_the_images():
    """xflip fires with probability p and then flips with probability 1/2."""
    torch.manual_seed(0)
    x = images(4096, 1, 8)
    changed = max_per_image(ada_augment(x, torch.tensor(0.5), {"xflip": 1.0}) - x) > 0
    assert abs(changed.float().mean().item() - 0.25) < 0.03


# ---------------------------------------------------------------------------- pixel blitting
# Blits are exact, alone (one gather) or beside a geometric transform (here one that never fires), when
# the gather also makes the band the resampler reads, and the resampler reproduces it.
ALONE, RESAMPLED = ({}, 0.0), ({"scale": 1e-9}, 1e-5)


@pytest.mark.parametrize("extra, tol", [ALONE, RESAMPLED])
def test_xflip_mirrors_or_keeps_each_image(extra, tol):
    torch.manual_seed(0)
    x = images(256, 3, 12)
    y = ada_augment(x, P1, {"xflip": 1.0, **extra})
    kept, mirrored = max_per_image(y - x) <= tol, max_per_image(y - x.flip(-1)) <= tol
    assert (kept | mirrored).all() and kept.any() and mirrored.any()


@pytest.mark.parametrize("extra, tol", [ALONE, RESAMPLED])
def test_rotate90_turns_each_image_by_a_quarter_turn(extra, tol):
    torch.manual_seed(0)
    x = images(256, 1, 10)
    y = ada_augment(x, P1, {"rotate90": 1.0, **extra})
    turns = [max_per_image(y - torch.rot90(x, k, dims=(2, 3))) <= tol for k in range(4)]
    matches = torch.stack(turns)  # (4, B)
    assert (matches.sum(0) == 1).all() and matches.any(1).all()


@pytest.mark.parametrize("extra, tol", [ALONE, RESAMPLED])
def test_xint_shifts_each_image_by_whole_pixels_filling_by_reflection(extra, tol):
    torch.manual_seed(0)
    x = images(128, 3, 16)
    y = ada_augment(x, P1, {"xint": 1.0, **extra})
    reach = round(ada.XINT_MAX * 16)  # 2 pixels
    padded = F.pad(x, [reach] * 4, mode="reflect")
    shifts = [(tx, ty) for tx in range(-reach, reach + 1) for ty in range(-reach, reach + 1)]
    matches = torch.stack([max_per_image(y - padded[:, :, reach - ty:, reach - tx:][:, :, :16, :16]) <= tol
                           for tx, ty in shifts])  # (shifts, B)
    assert (matches.sum(0) == 1).all()
    assert matches.any(1).sum() > len(shifts) // 2  # many different shifts, not just none


# ---------------------------------------------------------------------------------- geometry
def reference_resample(x: Tensor, L: Tensor, offset: Tensor) -> Tensor:
    """AugmentPipe's resampler, step by step, with its largest margin (size - 1) and upfirdn2d's
    zero insertion and convolution; G_inv = [[L, offset], [0, 0, 1]] in centred pixel coordinates."""
    B, C, H, W = x.shape
    f = torch.tensor(ada.SYM6, dtype=torch.float64)
    f2 = torch.outer(f, f) / f.sum() ** 2  # (12, 12)

    def affine(sx, sy, tx=0.0, ty=0.0):
        return torch.tensor([[sx, 0, tx], [0, sy, ty], [0, 0, 1]], dtype=torch.float64)

    G = torch.eye(3, dtype=torch.float64).repeat(B, 1, 1)
    G[:, :2, :2], G[:, :2, 2] = L, offset
    img = F.pad(x, [W - 1, W - 1, H - 1, H - 1], mode="reflect")
    zeros = torch.zeros(B, C, 2 * img.shape[2], 2 * img.shape[3], dtype=x.dtype)
    zeros[:, :, ::2, ::2] = img
    z = F.pad(zeros, [6, 5, 6, 5]).flatten(0, 1).unsqueeze(1)
    img = F.conv2d(z, (4 * f2).flip(0, 1)[None, None]).view(B, C, *zeros.shape[2:])
    G = affine(2, 2) @ G @ affine(0.5, 0.5)
    G = affine(1, 1, -0.5, -0.5) @ G @ affine(1, 1, 0.5, 0.5)
    shape = [B, C, (H + 6) * 2, (W + 6) * 2]
    G = affine(2 / img.shape[3], 2 / img.shape[2]) @ G @ affine(shape[3] / 2, shape[2] / 2)
    grid = F.affine_grid(G[:, :2, :], shape, align_corners=False)
    img = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = F.conv2d(img[:, :, 1:-1, 1:-1].flatten(0, 1).unsqueeze(1), f2[None, None])[:, :, ::2, ::2]
    return y.view(B, C, H, W)


def rotation(theta: float, scale: float) -> Tensor:
    return ada._rotation(torch.tensor([theta])) * scale  # (1, 2, 2)


@pytest.mark.parametrize("L, offset, crop, outside", [
    (torch.eye(2)[None], torch.zeros(1, 2), 0, 2e-6),                      # identity
    (rotation(0.4, 1 / 1.1), torch.tensor([[1.3, -0.7]]), 5, 1e-3),        # within the exact band
    (rotation(2.2, 1.6), torch.tensor([[2.0, 3.0]]), 7, 0.05),             # zoomed out: reflections show
    (torch.eye(2)[None], torch.tensor([[5.0, -4.0]]), 5, 0.05),            # shifted past the band
])
def test_resampler_matches_the_reference(L, offset, crop, outside):
    """Pixels that read the image or the exact band (at least the central ones) agree with AugmentPipe's
    resampler to float error; where the padding is mirrored after upsampling rather than before, they
    differ by sym6's asymmetry: a few percent on band-limited images."""
    x = smooth(4, 3, 16).double()
    want = reference_resample(x, L.double().expand(4, 2, 2), offset.double().expand(4, 2)).float()
    P = ada._gather(x.float(), ada._blit_index(4, 16, 16, ada.PAD, None, None, None, x.device))
    got = ada._resample(P, L.expand(4, 2, 2), offset.expand(4, 2))
    assert (got - want)[..., crop:16 - crop, crop:16 - crop].abs().max() < 2e-6
    assert (got - want).abs().max() < outside


def test_geometric_parameters_follow_the_reference():
    """Scale and aniso log2-normal (std 0.2), xfrac normal (std 0.125 of the size), and rotation, drawn
    before and after aniso with p_rot = 1 - sqrt(1 - p) each, rotating a fraction p of the images."""
    torch.manual_seed(0)
    n, cpu = 4096, torch.device("cpu")
    L, _ = ada._geometric_matrix(n, 16, 16, P1, {"scale": 1.0}, cpu)
    assert abs(L[:, 0, 0].log2().std() - ada.SCALE_STD) < 0.01 and torch.equal(L[:, 0, 0], L[:, 1, 1])
    L, _ = ada._geometric_matrix(n, 16, 16, P1, {"aniso": 1.0}, cpu)
    assert abs(L[:, 0, 0].log2().std() - ada.ANISO_STD) < 0.01
    assert (L[:, 0, 0] * L[:, 1, 1] - 1).abs().max() < 1e-5  # diag(1/a, a)
    _, offset = ada._geometric_matrix(n, 16, 24, P1, {"xfrac": 1.0}, cpu)  # H 16, W 24
    assert (offset.std(0) / torch.tensor([24, 16]) - ada.XFRAC_STD).abs().max() < 0.01
    L, _ = ada._geometric_matrix(n, 16, 16, torch.tensor(0.5), {"rotate": 1.0}, cpu)
    assert (L @ L.transpose(1, 2) - torch.eye(2)).abs().max() < 1e-5
    rotated = (L - torch.eye(2)).flatten(1).abs().amax(1) > 0
    assert abs(rotated.float().mean().item() - 0.5) < 0.03


def test_filter_matrices_differentiate_like_torchs_convolutions():
    """The up- and downsampling as matrix products match torch's depthwise convolutions with the 12 x 12
    filter, and their first and second derivatives (R1's double backward needs the second)."""
    down, up = ada._sym6(torch.device("cpu"))  # 1D factors of the separable 12 x 12 filters
    for factor, transpose, padding, size in ((up, True, 5 + ada.CROP, 9), (down, False, 0, 16)):
        w = torch.outer(factor, factor).expand(2, 1, 12, 12)  # the 2D filter, as a grouped convolution
        conv = F.conv_transpose2d if transpose else F.conv2d
        x = torch.randn(1, 2, size, size, requires_grad=True)
        ours = ada._filter(x, transpose, padding)
        torchs = conv(x, w, stride=2, padding=padding, groups=2)
        r = torch.randn_like(ours, requires_grad=True)
        (g_ours,), (g_torchs,) = (torch.autograd.grad(y, x, r, create_graph=True) for y in (ours, torchs))
        s_ = torch.randn_like(g_ours)
        (gg_ours,), (gg_torchs,) = (torch.autograd.grad(g, r, s_) for g in (g_ours, g_torchs))
        for a, b in ((ours, torchs), (g_ours, g_torchs), (gg_ours, gg_torchs)):
            assert a.shape == b.shape and (a - b).abs().max() < 1e-5


def test_geometric_transforms_change_images_at_p_one():
    torch.manual_seed(0)
    x = smooth(64, 3, 16)
    y = ada_augment(x, P1, PIPELINES["geom"])
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert (max_per_image(y - x) > 1e-3).float().mean() > 0.9


# ------------------------------------------------------------------------------------ colour
def test_brightness_adds_one_constant_per_image():
    torch.manual_seed(0)
    x = images(64, 3, 8)
    d = (ada_augment(x, P1, {"brightness": 1.0}) - x).flatten(1)  # (B, C H W)
    assert (d.amax(1) - d.amin(1)).max() < 1e-5
    assert d[:, 0].std() > 0.1  # ~ BRIGHTNESS_STD: a different constant per image


def test_contrast_scales_each_image_about_zero():
    torch.manual_seed(0)
    x = images(64, 3, 8)
    y = ada_augment(x, P1, {"contrast": 1.0})
    c = (y * x).flatten(1).sum(1) / (x * x).flatten(1).sum(1)  # (B,) least-squares factor
    assert max_per_image(y - c.view(-1, 1, 1, 1) * x).max() < 1e-5
    assert c.min() > 0 and c.log2().std() > 0.3  # log2-normal, std CONTRAST_STD


def test_one_channel_colour_is_affine_per_image_and_skips_hue_and_saturation():
    torch.manual_seed(0)
    x = images(64, 1, 8)
    assert torch.equal(ada_augment(x, P1, {"hue": 1.0, "saturation": 1.0}), x)
    y = ada_augment(x, P1, PIPELINES["color"]).flatten(1)
    xc, yc = x.flatten(1) - x.flatten(1).mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    slope = (xc * yc).sum(1) / (xc * xc).sum(1)  # (B,) least-squares
    assert (yc - slope[:, None] * xc).abs().max() < 1e-4 and (slope < 0).any() and (slope > 0).any()  # luma flips


def test_hue_rotates_colours_about_the_luma_axis():
    torch.manual_seed(0)
    x = images(64, 3, 8)
    y = ada_augment(x, P1, {"hue": 1.0})
    grey = torch.ones(1, 3, 1, 1) / 3 ** 0.5
    luma = lambda t: (t * grey).sum(1)  # noqa: E731  the component along the luma axis
    assert (luma(y) - luma(x)).abs().max() < 1e-5 and max_per_image(y - x).median() > 0.1


# -------------------------------------------------------------------------------- corruption
def test_cutout_zeroes_one_rectangle_and_noise_adds_noise():
    torch.manual_seed(0)
    x = torch.ones(64, 1, 16, 16)
    y = ada_augment(x, P1, {"cutout": 1.0})
    zeros = (y == 0).flatten(1).float().mean(1)
    assert ((y == 0) | (y == 1)).all() and (zeros <= 0.25).all() and (zeros >= 0.0625).all()
    n = ada_augment(x, P1, {"noise": 1.0}) - x
    assert (n.flatten(1).std(1) < 0.6).all() and n.flatten(1).std(1).mean() > 0.03


# ------------------------------------------------------------------------- fit for a step
def test_same_seed_same_output_other_seed_other_output():
    x = images(16, 3, 16)
    outs = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        outs.append(ada_augment(x, torch.tensor(0.7), PIPELINES["bgcnc"]))
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])


@pytest.mark.parametrize("c", [1, 3])
def test_a_call_reads_nothing_on_the_host(c):
    x, p = images(8, c, 16), torch.tensor(0.6)
    ada_augment(x, p, PIPELINES["bgcnc"])  # constants (the filter, colour axes) are made on the first call
    with HostSyncs() as syncs:
        ada_augment(x, p, PIPELINES["bgcnc"])
    assert sum(syncs.counts.values()) == 0, dict(syncs.where)


def test_r1_double_backward_reaches_d_weights():
    """R1 differentiates D(augment(x)) with respect to x, then backpropagates the penalty into D."""
    torch.manual_seed(0)
    D = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(4 * 8 * 8, 1))
    x = smooth(8, 3, 16).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(ada_augment(x, torch.tensor(0.8), PIPELINES["bgcnc"])).sum(), x,
                                  create_graph=True)
    grad.square().sum().backward()
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    for w in (D[0].weight, D[3].weight):  # the biases do not move the gradient with respect to x
        assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


def test_bfloat16_in_bfloat16_out_and_float32_inside_autocast():
    x = images(4, 3, 16).to(torch.bfloat16)
    y = ada_augment(x, torch.tensor(0.5), PIPELINES["bgcnc"])
    assert y.dtype == torch.bfloat16 and y.shape == x.shape and torch.isfinite(y.float()).all()
    x = images(4, 3, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as inside a trainer's bf16 forward pass
        y = ada_augment(x, P0, PIPELINES["bgc"])
    assert y.dtype == torch.float32 and (y - x).abs().max() < 1e-5
