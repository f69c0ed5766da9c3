"""The evaluation protocol: real reference features (cached by content), generated samples, metrics.

One `Evaluator` serves `gan eval` and evaluation during training. It picks the feature
space from the data (the digits classifier for digits, the FID Inception for other images,
the raw coordinates for 2D points), caches the real data's features keyed by their content and
everything else that changes them (gan_cli.metrics.reference), and records the protocol next to every value.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from gan_cli import metrics as M
from gan_cli.config import EvalOptions, is_int
from gan_cli.data.base import GanData
from gan_cli.data.embedded import MIXTURES, modes
from gan_cli.build import build
from gan_cli.errors import ConfigError
from gan_cli.metrics.reference import reference_features

METRICS = ("fd", "kid", "is", "pr", "dc", "classes", "memorisation", "modes")
_LOWER_IS_BETTER = ("fid", "fd", "kid", "class_kl", "kl_uniform", "copy_fraction")
IS_SPLITS = 10
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000  # torch-fidelity's defaults; the size is capped by default only


def embed(extractor, x: Tensor, batch_size: int, device: torch.device) -> tuple[Tensor, Tensor | None]:
    """Features (and logits) of images `x` by `extractor`, in batches, on the CPU; with no
    extractor (2D points, extractor=raw), the flattened values and no logits."""
    if extractor is None:
        return x.flatten(1).float(), None
    feats, logits = [], []
    for start in range(0, len(x), batch_size):
        f, lg = extractor.features_and_logits(x[start : start + batch_size].to(device))
        feats.append(f.cpu())
        logits.append(lg.cpu())
    return torch.cat(feats), torch.cat(logits)


def lower_is_better(name: str) -> bool:
    """Whether smaller is better for metric `name`; else higher (is, psnr, ssim, class_accuracy, precision...)."""
    translation = ("l1", "cycle_l1", "cycle_l1_b")  # pixel errors of gan_cli.metrics.translation_quality
    return name.split("_digits")[0] in _LOWER_IS_BETTER + translation or name.startswith(("fd_", "kid_"))


@dataclass
class EvalSettings(EvalOptions):
    """What one evaluation is asked for: `gan eval`'s options or trainer.eval.*, plus the truncation psi."""

    truncation: float | None = None  # psi of the truncation trick (gan_cli.truncation); None: none

    @classmethod
    def from_config(cls, cfg: Any) -> "EvalSettings":
        fields = {k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg}
        fields["metrics"] = list(fields.get("metrics") or ["auto"])
        return cls(**fields)


class Evaluator:
    def __init__(self, dataset_cfg: DictConfig, settings: EvalSettings, device: torch.device,
                 data: GanData | None = None):
        self.settings, self.device = settings, device
        self.dataset_cfg = dataset_cfg
        self.data: GanData = data if data is not None else build("dataset", dataset_cfg)
        self.extractor = self._extractor()
        self.metrics = self._resolve_metrics(settings.metrics)
        self.real_features, self.real_logits, self.reference = self._reference("train", self.data)
        self.kid_subset_size = self._kid_subset_size() if "kid" in self.metrics else None
        self.heldout_features, self.heldout = None, None
        if "memorisation" in self.metrics:
            heldout = build("dataset", heldout_config(dataset_cfg))
            self.heldout_features, _, self.heldout = self._reference("heldout", heldout)

    # ------------------------------------------------------------------ set-up
    def _extractor(self):
        choice = self.settings.extractor
        if choice == "auto":
            choice = "raw" if self.data.kind == "points" else ("digits" if self.data.name == "digits" else "inception")
        if choice == "raw":
            return None
        if self.data.kind == "points":
            raise ConfigError(f"extractor={choice} embeds images, but {self.data.name} is 2D points; use extractor=raw.")
        if choice == "digits":
            from gan_cli.metrics.extractors.digits import load_digits_classifier

            return load_digits_classifier(self.settings.cache_dir).to(self.device)
        if choice == "inception":
            from gan_cli.metrics.extractors.inception import load_fid_inception

            return load_fid_inception(self.settings.inception_weights, fetch=self.settings.fetch_weights).to(self.device)
        raise ConfigError(f"extractor={choice!r} is not a feature extractor; valid: auto, digits, inception, raw.")

    def _resolve_metrics(self, asked: list[str]) -> list[str]:
        if asked == ["auto"]:
            asked = ["modes", "fd", "kid", "pr"] if self.data.kind == "points" else ["fd", "kid", "is", "pr", "dc"]
            if self.extractor_name == "digits_cnn":
                asked.append("classes")
            if heldout_config(self.dataset_cfg, strict=False) is not None:
                asked.append("memorisation")
        unknown = [m for m in asked if m not in METRICS]
        if unknown:
            raise ConfigError(f"metrics={unknown} not known; valid metrics: {', '.join(METRICS)} (or auto).")
        if "modes" in asked and self.data.name not in MIXTURES:
            raise ConfigError(f"metric `modes` needs a 2D Gaussian mixture ({', '.join(MIXTURES)}), not {self.data.name}.")
        if ("is" in asked or "classes" in asked) and self.extractor is None:
            raise ConfigError("metrics `is` and `classes` need a classifier; 2D points have none.")
        if "classes" in asked and self.extractor_name != "digits_cnn":
            raise ConfigError("metric `classes` needs a classifier of the dataset's own classes (extractor=digits).")
        if "memorisation" in asked:
            heldout_config(self.dataset_cfg)  # raises with the fix if there is no held-out split
        return asked

    def _kid_subset_size(self) -> int:
        """kid_subset_size as set, or min(1000, both counts) when unset; never silently shrunk."""
        asked, counts = self.settings.kid_subset_size, (len(self.real_features), self.settings.num_fake)
        if asked is None:
            return min(KID_SUBSET_SIZE, *counts)
        if not is_int(asked) or not 2 <= asked <= min(counts):
            raise ConfigError(
                f"kid_subset_size={asked!r}: KID draws that many samples from each of the {counts[0]} real samples "
                f"(num_real, or the whole dataset when smaller) and the {counts[1]} generated ones (num_fake), so it "
                f"must be an integer from 2 to {min(counts)}. Lower kid_subset_size, raise num_real / num_fake, or "
                f"set kid_subset_size=null (min({KID_SUBSET_SIZE}, both counts)); KID values are only comparable "
                f"at equal subset sizes.")
        return asked

    @property
    def extractor_name(self) -> str:
        return "raw" if self.extractor is None else self.extractor.name

    def _embed(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        return embed(self.extractor, x, self.settings.batch_size, self.device)

    def _reference(self, split: str, data: GanData) -> tuple[Tensor, Tensor | None, dict]:
        """Real features of `data` (the `split`), from the cache when the same content and protocol computed them."""
        key = {"split": split, "extractor": self.extractor_name, "weights": getattr(self.extractor, "weights_hash", ""),
               "num_real": self.settings.num_real, "seed": self.settings.seed}
        return reference_features(data, key, self.settings.cache_dir,
                                  lambda: self._embed(real_samples(data, self.settings.num_real, self.settings.seed)))

    # ------------------------------------------------------------------ evaluation
    def __call__(self, sample: Callable[[int, int], Tensor]) -> tuple[dict[str, float], dict[str, Any]]:
        """`sample(num, seed)` -> generated samples on the CPU; returns (metrics, protocol)."""
        start = time.perf_counter()
        fake = sample(self.settings.num_fake, self.settings.seed)
        timings = {"generate": time.perf_counter() - start}
        start = time.perf_counter()
        fake_feats, fake_logits = self._embed(fake)
        timings["embed"] = time.perf_counter() - start
        suffix = {"digits_cnn": "_digits"}.get(self.extractor_name, "")
        fd_name = "fid" if self.extractor_name == "inception_fid" else f"fd{suffix}"
        results: dict[str, float] = {}
        for metric in self.metrics:
            start = time.perf_counter()
            results.update(self._metric(metric, fake, fake_feats, fake_logits, suffix, fd_name))
            timings[metric] = time.perf_counter() - start
        return results, self.protocol(timings)

    def _metric(self, metric, fake, fake_feats, fake_logits, suffix, fd_name) -> dict[str, float]:
        real = self.real_features
        if metric == "fd":
            return {fd_name: M.frechet_distance(*M.feature_stats(real), *M.feature_stats(fake_feats))}
        if metric == "kid":
            mean, std = M.kernel_inception_distance(real, fake_feats, num_subsets=KID_SUBSETS,
                                                    subset_size=self.kid_subset_size, seed=self.settings.seed)
            return {f"kid{suffix}": mean, f"kid{suffix}_std": std}
        if metric == "is":
            mean, std = M.inception_score_from_logits(fake_logits, splits=IS_SPLITS)
            return {f"is{suffix}": mean, f"is{suffix}_std": std}
        if metric == "pr":
            return M.precision_recall(real, fake_feats)
        if metric == "dc":
            return M.density_coverage(real, fake_feats)
        if metric == "classes":
            return M.class_stats(fake_logits.argmax(1), self.data.num_classes)
        if metric == "memorisation":
            return M.memorisation_stats(fake_feats, real, self.heldout_features)
        if metric == "modes":
            centres, std = modes(self.data.name)
            return M.mode_stats(fake.flatten(1), centres, std)
        raise AssertionError(metric)

    def protocol(self, timings: dict[str, float]) -> dict[str, Any]:
        return {
            "extractor": self.extractor_name,
            "extractor_weights_sha256": getattr(self.extractor, "weights_hash", None),
            "extractor_test_accuracy": getattr(self.extractor, "test_accuracy", None),
            "resize": getattr(self.extractor, "resize", "none (raw coordinates)"),
            "dataset": self.data.name,
            "num_real": len(self.real_features),
            "num_heldout": None if self.heldout_features is None else len(self.heldout_features),
            "num_fake": self.settings.num_fake,
            "seed": self.settings.seed,
            "reference_sha256": self.reference["sha256"],
            "reference_fingerprint": self.reference["fingerprint"],
            "reference_cache": self.reference["cache"],
            **({"heldout_fingerprint": self.heldout["fingerprint"]} if self.heldout else {}),
            **self._metric_protocol(),
            "seconds": {k: round(v, 3) for k, v in timings.items()},
        }

    def _metric_protocol(self) -> dict[str, Any]:
        """How IS, KID and the nearest-neighbour metrics were computed, for the metrics asked."""
        out: dict[str, Any] = {}
        if "is" in self.metrics:
            logits = ("the FID Inception's 1008 logits without the fc bias (as the original code, torch-fidelity, "
                      "torchmetrics)" if self.extractor_name == "inception_fid" else
                      f"the {self.extractor_name} classifier's logits (its own classes: not comparable with "
                      f"published Inception Scores)")
            out["inception_score"] = (f"softmax of {logits}; {self.settings.num_fake} samples split into {IS_SPLITS} "
                                      f"chunks of consecutive rows (i*N//{IS_SPLITS} to (i+1)*N//{IS_SPLITS}), "
                                      f"every row kept; mean and population std over the chunks")
        if "kid" in self.metrics:
            out["kid"] = {"subset_size": self.kid_subset_size, "subsets": KID_SUBSETS,
                          "subset_size_from": "kid_subset_size" if self.settings.kid_subset_size is not None
                          else f"default: min({KID_SUBSET_SIZE}, num_real, num_fake)",
                          "estimator": "unbiased MMD^2, kernel (x.y / D + 1)^3; mean and population std over subsets"}
        if {"pr", "dc", "memorisation"} & set(self.metrics):
            out["nearest_neighbours"] = ("float64 exact Euclidean distances (a copy is at distance 0); k=3 for "
                                         "precision/recall, k=5 for density/coverage")
        return out


def real_samples(data: GanData, num: int, seed: int) -> Tensor:
    """Up to `num` real samples, a fixed random subset when the dataset is larger."""
    n = len(data)
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:num] if num < n else torch.arange(n)
    if data.in_memory:
        return data.dataset.tensors[0][idx]
    return torch.stack([data.dataset[int(i)][0] for i in idx])


def heldout_config(dataset_cfg: DictConfig, strict: bool = True) -> DictConfig | None:
    """The same dataset's held-out split: digits split=heldout, torchvision train=false."""
    cfg = OmegaConf.create(OmegaConf.to_container(dataset_cfg, resolve=True))
    if cfg.get("split") == "train":
        cfg.split = "heldout"
        return cfg
    if cfg.get("train") is True:
        cfg.train = False
        return cfg
    if strict:
        raise ConfigError(
            "metric `memorisation` compares samples with training data and with held-out data the GAN never saw, "
            "so the run must have trained on a split: dataset=digits dataset.split=train, or a torchvision "
            "dataset with dataset.train=true (its test split is held out)."
        )
    return None
