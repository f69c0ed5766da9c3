"""The FID Inception-v3: the network of the TensorFlow FID code, in the layout pytorch-fid ports it to.

This is torchvision's ``Inception3`` without the auxiliary classifier and with 1008 logits, where the
mixed blocks 5b-5d, 6b-6e, 7b and 7c are replaced by the FID variants: their average pools ignore the
zero padding (``count_include_pad=False``, as TensorFlow does), and the pool branch of the last block
(7c) uses a max pool. Features are the 2048-d output of the final average pool ("pool3"); logits are
the 1008-way ``fc`` on top of it without its bias (``pool3 @ fc.weight.T``), the logits the original
Inception Score code, torch-fidelity and torchmetrics compute the Inception Score from.

The state-dict keys match pytorch-fid's weights file ``pt_inception-2015-12-05-6726825d.pth``. Weights
are read from a local file; they are downloaded only when asked to (`gan fetch fid-inception`, or
``load_fid_inception(fetch=True)``, which `gan eval ... fetch_weights=true` uses).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.inception import BasicConv2d, InceptionA, InceptionB, InceptionC, InceptionD, InceptionE

from gan_cli.fetch import ASSETS, file_sha256
from gan_cli.fetch import fetch as fetch_asset  # pytorch-fid's release, or $GAN_CLI_FID_WEIGHTS_URL
from gan_cli.metrics.extractors.base import (
    ExtractorError,
    FeatureExtractor,
    resize_bilinear,
    to_channels,
)

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_HASH_PREFIX = "6726825d"  # torch hub convention: the file name carries its sha256 prefix
CONFIG_KEY = "inception_weights"  # of `gan eval`; trainer.eval.inception_weights in training
INPUT_SIZE = 299


# ---------------------------------------------------------------------------- FID blocks


def _avg_pool_same(x: Tensor) -> Tensor:
    """3x3 stride-1 average pool that, like TensorFlow, averages over the real (unpadded) pixels only."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(InceptionA):
    """torchvision's InceptionA with TensorFlow's average pooling (padding not counted)."""

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_same(x))
        return torch.cat([b1, b5, b3, bp], dim=1)


class FIDInceptionC(InceptionC):
    """torchvision's InceptionC with TensorFlow's average pooling (padding not counted)."""

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            b7d = layer(b7d)
        bp = self.branch_pool(_avg_pool_same(x))
        return torch.cat([b1, b7, b7d, bp], dim=1)


class _FIDInceptionE(InceptionE):
    """torchvision's InceptionE; subclasses choose the pool of the pool branch."""

    def _pool(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], dim=1)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], dim=1)
        bp = self.branch_pool(self._pool(x))
        return torch.cat([b1, b3, b3d, bp], dim=1)


class FIDInceptionE_1(_FIDInceptionE):
    """Mixed_7b: average pool without counting the padding."""

    def _pool(self, x: Tensor) -> Tensor:
        return _avg_pool_same(x)


class FIDInceptionE_2(_FIDInceptionE):
    """Mixed_7c: the FID graph max-pools in the pool branch (unlike the paper's average pool)."""

    def _pool(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


# ---------------------------------------------------------------------------- the network


class FIDInceptionV3(FeatureExtractor):
    """FID Inception-v3 as a :class:`FeatureExtractor`: pool3 features (2048) and 1008 logits.

    Input: ``(N, 1 or 3, H, W)`` in [-1, 1]. Grayscale is repeated to 3 channels, the image is resized
    bilinearly (``align_corners=False``) to 299x299, and fed as is: the FID network expects [-1, 1]
    (pytorch-fid maps its [0, 1] input with ``2x - 1``; generator images already are in that range).
    Module names are those of torchvision's ``Inception3``, so the state dict matches the weights file.
    """

    name = "inception_fid"
    feature_dim = 2048
    num_classes = 1008
    resize = "bilinear to 299x299"

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE_1(1280)
        self.Mixed_7c = FIDInceptionE_2(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2048, 1008)
        self.weights_hash = ""
        self.weights_path = ""
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, x: Tensor) -> Tensor:
        return resize_bilinear(to_channels(x, 3), INPUT_SIZE)

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.maxpool1(self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x))))  # 64 x 73 x 73
        x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))  # 192 x 35 x 35
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # 288 x 35 x 35
        x = self.Mixed_6a(x)  # 768 x 17 x 17
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))
        x = self.Mixed_7a(x)  # 1280 x 8 x 8
        x = self.Mixed_7c(self.Mixed_7b(x))  # 2048 x 8 x 8
        pool3 = torch.flatten(self.avgpool(x), 1)  # (N, 2048)
        # logits without fc's bias, as the original IS code, torch-fidelity and torchmetrics compute IS from
        return pool3, pool3 @ self.fc.weight.T  # (N, 2048), (N, 1008)


# ---------------------------------------------------------------------------- loading


def default_weights_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (``TORCH_HOME`` defaults to ``~/.cache/torch``); nothing is downloaded."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _missing_message(where: str) -> str:
    return (
        f"The FID Inception weights file {FID_WEIGHTS_NAME} was not found: {where}. Download it once with "
        f"`gan fetch fid-inception` (into {default_weights_dir()}, that is $TORCH_HOME/hub/checkpoints; "
        f"TORCH_HOME defaults to ~/.cache/torch), or let `gan eval ... fetch_weights=true` download it; "
        f"nothing is downloaded otherwise. By hand: copy pytorch-fid's {FID_WEIGHTS_NAME} "
        f"({ASSETS['fid-inception'].url}) into that folder, or point to it with "
        f"{CONFIG_KEY}=/path/to/{FID_WEIGHTS_NAME}. "
        f"For the embedded digits dataset, offline metrics need no Inception weights, e.g. "
        f"`gan eval metrics=[fd_digits]`."
    )


def _resolve(path: str | os.PathLike | None, fetch: bool = False) -> Path:
    """The weights file `path` names; a missing one is downloaded there when `fetch`, else an error."""
    if path is None or os.fspath(path) == "":  # an unset config value means the default location
        folder = default_weights_dir()
        candidate, where = folder / FID_WEIGHTS_NAME, f"searched the folder {folder}"
    else:
        candidate = Path(os.path.expanduser(os.fspath(path)))
        where = f"{CONFIG_KEY} names {candidate}, which does not exist"
        if candidate.is_dir():
            where = f"{CONFIG_KEY} names the folder {candidate}, which has no such file"
            candidate = candidate / FID_WEIGHTS_NAME
    if candidate.is_file():
        return candidate
    if not fetch:
        raise ExtractorError(_missing_message(where))
    return fetch_asset("fid-inception", candidate)


def load_fid_inception(
    path: str | os.PathLike | None = None, verify: bool = True, fetch: bool = False
) -> FIDInceptionV3:
    """The FID Inception-v3 with pytorch-fid's weights, read from a local file.

    ``path``: the weights file (or a folder holding ``pt_inception-2015-12-05-6726825d.pth``); by default
    ``$TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth``, resolved with
    ``torch.hub.get_dir()``. The file's sha256 must start with ``6726825d`` (torch hub's naming
    convention); ``verify=False`` skips that check, but only for a file given explicitly as ``path``.
    ``fetch=True`` downloads a missing file to where it was looked for (see ``gan_cli.fetch``); by
    default nothing is downloaded.
    Returns the network on the CPU, in eval mode, with ``weights_hash`` = the file's full sha256.
    """
    file = _resolve(path, fetch)
    explicit = path is not None and os.fspath(path) != ""
    digest = file_sha256(str(file))
    if (verify or not explicit) and not digest.startswith(FID_WEIGHTS_HASH_PREFIX):
        raise ExtractorError(
            f"The FID Inception weights file {file} has sha256 {digest}, but pytorch-fid's "
            f"{FID_WEIGHTS_NAME} has a sha256 starting with {FID_WEIGHTS_HASH_PREFIX}: the file is corrupt, "
            f"truncated or a different model. `gan fetch fid-inception` downloads a good copy into "
            f"{default_weights_dir()}; or copy the original file again and set "
            f"{CONFIG_KEY}=/path/to/{FID_WEIGHTS_NAME} (verify=False skips this check for a file you trust)."
        )
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        raise ExtractorError(
            f"Cannot read the FID Inception weights file {file} ({type(exc).__name__}: {exc}). It must be "
            f"pytorch-fid's {FID_WEIGHTS_NAME}, a PyTorch state dict; set {CONFIG_KEY} to a valid copy."
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ExtractorError(
            f"The FID Inception weights file {file} does not hold a state dict (a mapping of names to "
            f"tensors); it must be pytorch-fid's {FID_WEIGHTS_NAME}. Set {CONFIG_KEY} to a valid copy."
        )

    model = FIDInceptionV3()
    expected = model.state_dict()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}  # absent from older saves
    missing = sorted(set(expected) - set(state) - optional)
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong_shape:
        problems = []
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong_shape)):
            if keys:
                shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
                problems.append(f"{label}: {shown}")
        raise ExtractorError(
            f"The weights file {file} does not match the FID Inception-v3 ({'; '.join(problems)}). It must be "
            f"pytorch-fid's {FID_WEIGHTS_NAME}; set {CONFIG_KEY} to a valid copy."
        )
    full = {**expected, **state}
    model.load_state_dict(full, strict=True)
    model.weights_hash = digest
    model.weights_path = str(file)
    return model.requires_grad_(False).eval()
