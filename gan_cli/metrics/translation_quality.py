"""Metrics of image-to-image translation, on the held-out split of a translation dataset.

- ``l1``, ``psnr``, ``ssim``: outputs against the known targets (PSNR / SSIM by torchmetrics,
  per image then averaged, on images mapped from [-1, 1] to [0, 1] with data_range 1.0:
  SSIM's luminance term assumes intensities of one sign, so [-1, 1] would change its value).
- ``fd_<extractor>``: the Frechet distance of the outputs to the held-out real B images.
- ``class_accuracy``: whether a digit stays the same digit. One rule for every labelled
  dataset: a DigitsCNN trained on the target domain's training images and labels (cached),
  so grey digits get a classifier like the standard one and coloured thick ones their own.
- ``cycle_l1`` (|G_ba(G_ab(a)) - a|) and ``cycle_l1_b`` (|G_ab(G_ba(b)) - b|): with a B -> A generator.
"""
from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from gan_cli import metrics as M
from gan_cli.data.base import GanData
from gan_cli.data.selection import build_dataset
from gan_cli.checkpoint import save_atomic
from gan_cli.errors import ConfigError
from gan_cli.metrics.evaluate import EvalSettings, embed
from gan_cli.metrics.extractors import digits as D

METRICS = ("l1", "psnr", "ssim", "fd", "class_accuracy", "cycle_l1")
CLASSIFIER_VERSION = 1
PIXEL_PROTOCOL = "per-image mean; images mapped from [-1, 1] to [0, 1], data_range=1.0; SSIM gaussian 11x11, sigma 1.5"
Translate = Callable[[Tensor], Tensor]


class TranslationEvaluator:
    def __init__(self, dataset_cfg: DictConfig | None, data: GanData | None, settings: EvalSettings,
                 device: torch.device):
        start = time.perf_counter()
        self.settings, self.device = settings, device
        self.data = data if data is not None else build_dataset(dataset_cfg)
        test = self.data.test
        if not self.data.translation or test is None:
            raise ConfigError(f"The dataset {self.data.name!r} has no held-out translation split (kind "
                              f"{self.data.kind}); translation metrics need a paired or unpaired dataset.")
        idx = _subset(len(test.inputs), settings.num_fake, settings.seed)
        self.inputs = test.inputs[idx]
        self.targets = None if test.targets is None else test.targets[idx]
        self.labels = None if test.labels is None or bool((test.labels < 0).any()) else test.labels[idx]
        self.domain_b = test.domain_b[_subset(len(test.domain_b), settings.num_real, settings.seed)]
        self.metrics = self._resolve(settings.metrics)
        # the target domain's classifier (trained once, then cached) where a metric or the extractor uses it
        wanted = "class_accuracy" in self.metrics or settings.extractor in ("auto", "digits")
        self.classifier = self._classifier() if self.labels is not None and wanted else None
        self.extractor = self._extractor()
        self.real_features = self._embed(self.domain_b)[0] if "fd" in self.metrics else None
        self.setup_seconds = time.perf_counter() - start

    # ------------------------------------------------------------------ set-up
    def _resolve(self, asked: list[str]) -> list[str]:
        known = {"l1": self.targets, "psnr": self.targets, "ssim": self.targets, "class_accuracy": self.labels}
        if list(asked) == ["auto"]:
            return [m for m in METRICS if known.get(m, True) is not None]
        unknown = [m for m in asked if m not in METRICS]
        if unknown:
            raise ConfigError(f"metrics={list(asked)}: {', '.join(unknown)} not known for translation runs; valid: "
                              f"{', '.join(METRICS)} (or auto).")
        missing = [m for m in asked if known.get(m, True) is None]
        if missing:
            raise ConfigError(f"metrics={list(asked)}: {', '.join(missing)} need known targets (l1, psnr, ssim) or "
                              f"digit labels (class_accuracy), which {self.data.name} does not have; use metrics=[auto].")
        return list(asked)

    def _extractor(self):
        choice = self.settings.extractor
        if choice == "auto":
            choice = "digits" if self.classifier is not None else "inception"
        if choice == "raw":
            return None
        if choice == "digits":  # the target domain's own classifier where it has one
            return self.classifier or D.load_digits_classifier(self.settings.cache_dir).to(self.device)
        if choice == "inception":
            from gan_cli.metrics.extractors.inception import load_fid_inception

            return load_fid_inception(self.settings.inception_weights, fetch=self.settings.fetch_weights).to(self.device)
        raise ConfigError(f"extractor={choice!r} is not a feature extractor; valid: auto, digits, inception, raw.")

    @property
    def extractor_name(self) -> str:
        return "raw" if self.extractor is None else {"digits_cnn": "digits", "inception_fid": "inception"}.get(
            self.extractor.name, self.extractor.name)

    def _classifier(self) -> D.DigitsCNN:
        """The DigitsCNN of the target domain: from the cache, else trained on the training B images."""
        images, labels = _training_targets(self.data)
        digest = hashlib.sha256()
        for t in (images, labels):
            digest.update(t.contiguous().numpy().tobytes())
        res = self.data.shape[-1]
        file = Path(self.settings.cache_dir).expanduser() / f"target_cnn_{self.data.name}_{res}px_{digest.hexdigest()[:16]}.pt"
        model = D.DigitsCNN()
        if file.is_file():
            blob = torch.load(file, map_location="cpu", weights_only=True)
            if blob.get("version") == CLASSIFIER_VERSION:
                model.load_state_dict(blob["state_dict"])
                model.test_accuracy, model.loaded_from_cache = blob["test_accuracy"], True
        if not model.loaded_from_cache:
            model, test = train_target_classifier(images, labels), self.data.test
            known = test.targets is not None  # else no held-out B image has a known label
            model.test_accuracy = D._accuracy(model, test.targets, test.labels) if known else None
            save_atomic({"version": CLASSIFIER_VERSION, "state_dict": model.state_dict(),
                         "test_accuracy": model.test_accuracy}, file)
        model.weights_hash = D.state_dict_sha256(model.state_dict())
        model.cache_path = str(file)
        return model.requires_grad_(False).eval().to(self.device)

    def _embed(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        return embed(self.extractor, x, self.settings.batch_size, self.device)

    # ------------------------------------------------------------------ evaluation
    def __call__(self, translate_ab: Translate, translate_ba: Translate | None = None) -> tuple[dict[str, float], dict[str, Any]]:
        """`translate_*`: CPU (N, C, H, W) in [-1, 1] -> CPU outputs. Returns (metrics, protocol)."""
        start = time.perf_counter()
        out = translate_ab(self.inputs).float()
        timings = {"setup": self.setup_seconds, "translate": time.perf_counter() - start}
        results: dict[str, float] = {}
        start = time.perf_counter()
        if self.targets is not None and {"l1", "psnr", "ssim"} & set(self.metrics):
            pixel = pixel_metrics(out, self.targets, self.settings.batch_size)
            results.update({k: v for k, v in pixel.items() if k in self.metrics})
        timings["pixel"] = time.perf_counter() - start
        start = time.perf_counter()
        feats, logits = self._embed(out) if "fd" in self.metrics else (None, None)
        if feats is not None:
            real = M.feature_stats(self.real_features)
            results[f"fd_{self.extractor_name}"] = M.frechet_distance(*real, *M.feature_stats(feats))
        if "class_accuracy" in self.metrics:
            if self.extractor is not self.classifier or logits is None:
                logits = torch.cat([self.classifier.logits(out[i : i + self.settings.batch_size].to(self.device)).cpu()
                                    for i in range(0, len(out), self.settings.batch_size)])
            results["class_accuracy"] = (logits.argmax(1) == self.labels).float().mean().item()
        timings["features"] = time.perf_counter() - start
        if translate_ba is not None and "cycle_l1" in self.metrics:
            start = time.perf_counter()
            results["cycle_l1"] = (translate_ba(out).float() - self.inputs).abs().mean().item()
            results["cycle_l1_b"] = (translate_ab(translate_ba(self.domain_b)).float() - self.domain_b).abs().mean().item()
            timings["cycle"] = time.perf_counter() - start
        return results, self.protocol(timings)

    def protocol(self, timings: dict[str, float]) -> dict[str, Any]:
        c = self.classifier
        return {
            "task": "translation",
            "dataset": self.data.name,
            "split": "held-out test split (GanData.test)",
            "extractor": self.extractor_name,
            "extractor_weights_sha256": getattr(self.extractor, "weights_hash", None),
            "resize": getattr(self.extractor, "resize", "none (raw pixels)"),
            "num_fake": len(self.inputs),  # translated held-out inputs
            "num_real": len(self.domain_b),  # held-out real B images (the Frechet reference)
            "targets_known": self.targets is not None,
            "psnr_ssim": PIXEL_PROTOCOL,
            "classifier": None if c is None else "DigitsCNN trained on the target domain's training images",
            "classifier_accuracy_real": None if c is None else c.test_accuracy,  # on the held-out real targets
            "classifier_sha256": None if c is None else c.weights_hash,
            "cycle": "cycle_l1: inputs a -> b -> a; cycle_l1_b: held-out real b -> a -> b",
            "seed": self.settings.seed,
            "seconds": {k: round(v, 3) for k, v in timings.items()},
        }


def pixel_metrics(out: Tensor, target: Tensor, batch_size: int = 500) -> dict[str, float]:
    """l1 in [-1, 1] units; psnr and ssim per image on [0, 1] (data_range 1.0), averaged."""
    psnr, ssim = [], []
    for i in range(0, len(out), batch_size):
        o, t = (out[i : i + batch_size] + 1) / 2, (target[i : i + batch_size] + 1) / 2
        psnr.append(peak_signal_noise_ratio(o, t, data_range=1.0, dim=(1, 2, 3), reduction="none"))
        ssim.append(structural_similarity_index_measure(o, t, data_range=1.0, reduction="none"))
    return {"l1": (out - target).abs().mean().item(), "psnr": torch.cat(psnr).mean().item(),
            "ssim": torch.cat(ssim).mean().item()}


def train_target_classifier(images: Tensor, labels: Tensor, seed: int = 0) -> D.DigitsCNN:
    """A DigitsCNN trained like the standard one (same epochs, schedule, shifts) on `images` of any domain."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = D.DigitsCNN()
        x = model.preprocess(images.float())  # (N, 1, 32, 32)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=D.LR)
        steps = D.EPOCHS * math.ceil(len(x) / D.BATCH_SIZE)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=D.LR, total_steps=steps)
        model.train()
        for _ in range(D.EPOCHS):
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), D.BATCH_SIZE):
                batch = order[i : i + D.BATCH_SIZE]
                loss = F.cross_entropy(model._forward(D._shift(x[batch], gen))[1], labels[batch])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    return model.requires_grad_(False).eval()


def _training_targets(data: GanData) -> tuple[Tensor, Tensor]:
    """The training set's B images and their labels: items (a, b, y) or (a, b, y_a, y_b)."""
    if data.in_memory:
        tensors = data.dataset.tensors
        return tensors[1], tensors[-1].long()
    items = [data.dataset[i] for i in range(len(data.dataset))]
    return torch.stack([it[1] for it in items]), torch.tensor([int(it[-1]) for it in items])


def _subset(n: int, num: int, seed: int) -> Tensor:
    """All of 0..n-1, or a fixed random `num` of them."""
    if num >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:num].sort().values
