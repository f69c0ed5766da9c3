"""The evaluation protocol: real reference features (cached by content), generated samples, metrics.

One `Evaluator` serves `gan eval` and evaluation during training. It picks the feature
space from the data (the digits classifier for digits, the FID Inception for other images,
the raw coordinates for 2D points), caches the real data's features keyed by their content and
everything else that changes them (gan_cli.metrics.reference), and records the protocol next to every value.
"""
from __future__ import annotations

import math
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
from gan_cli.data.selection import build_dataset
from gan_cli.errors import ConfigError
from gan_cli.metrics.reference import reference_features
from gan_cli.metrics.resize import RESIZE_MODES, Preprocess
from gan_cli.metrics.sides import describe, differences, stored_uint8
from gan_cli.metrics.stats_file import load_stats, save_stats

METRICS = ("fd", "kid", "is", "pr", "dc", "classes", "memorisation", "modes")
STATS_ONLY = ("fd", "is", "classes", "modes")  # what a statistics file (real_stats=) suffices for
_LOWER_IS_BETTER = ("fid", "fd", "kid", "class_kl", "kl_uniform", "copy_fraction")
IS_SPLITS = 10
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000  # torch-fidelity's defaults; the size is capped by default only


def embed(extractor, x: Tensor, batch_size: int, device: torch.device,
          prep: Preprocess | None = None) -> tuple[Tensor, Tensor | None]:
    """Features (and logits) of images `x` by `extractor`, in batches, on the CPU, each batch first through
    `prep` (quantisation, resize) when given; with no extractor (2D points, extractor=raw), the flattened
    values and no logits."""
    if extractor is None:
        return (x if prep is None else prep(x)).flatten(1).float(), None
    feats, logits = [], []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        f, lg = extractor.features_and_logits((batch if prep is None else prep(batch, device)).to(device))
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
    real_stats: str | None = None  # reference mu / sigma from this .npz (pytorch-fid's format) instead of data
    save_stats: str | None = None  # write the reference mu / sigma to this .npz

    @classmethod
    def from_config(cls, cfg: Any) -> "EvalSettings":
        fields = {k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg}
        fields["metrics"] = list(fields.get("metrics") or ["auto"])
        return cls(**fields)


class Evaluator:
    """Metrics of generated samples against `data` (else the dataset `dataset_cfg` builds; None: no held-out
    split), or against the statistics file `settings.real_stats`."""

    def __init__(self, dataset_cfg: DictConfig | None, settings: EvalSettings, device: torch.device,
                 data: GanData | None = None):
        self.settings, self.device = settings, device
        self.dataset_cfg = dataset_cfg
        self.data: GanData = data if data is not None else build_dataset(dataset_cfg)
        self.extractor = self._extractor()
        self.prep = self._preprocess()
        self.metrics = self._resolve_metrics(settings.metrics)
        self._load_reference()
        self.kid_subset_size = self._kid_subset_size() if "kid" in self.metrics else None
        self.heldout_features, self.heldout = None, None
        if "memorisation" in self.metrics:
            heldout = build_dataset(heldout_config(dataset_cfg))
            self.heldout_features, _, self.heldout = self._reference("heldout", heldout)

    # ------------------------------------------------------------------ set-up
    def _load_reference(self) -> None:
        """The real side: features of the data (cached), or mu / sigma of real_stats=; written to save_stats=."""
        self.real_stats, self.real_features, self.real_logits = None, None, None
        if self.settings.real_stats:
            dim = self.extractor.feature_dim if self.extractor is not None else math.prod(self.data.shape)
            mu, sigma, self.reference = load_stats(self.settings.real_stats, dim, self.extractor_name)
            self.real_stats = (mu, sigma)
        else:
            self.real_features, self.real_logits, self.reference = self._reference("train", self.data)
        if self.settings.save_stats:
            save_stats(self.settings.save_stats, *self._real_stats(), {
                "extractor": self.extractor_name, "extractor_weights_sha256": getattr(self.extractor, "weights_hash", None),
                "reference": self.reference, "preprocessing": {"real": self._preprocessing()["real"]}})

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

    def _preprocess(self) -> Preprocess | None:
        """Quantisation for images (not 2D points), and for the Inception clean-fid's resize mode."""
        if self.settings.resize not in RESIZE_MODES:
            raise ConfigError(f"resize={self.settings.resize!r} is not a resize mode; valid: {', '.join(RESIZE_MODES)} "
                              f"(clean-fid's modes: clean is PIL bicubic, legacy_pytorch pytorch-fid's bilinear, "
                              f"legacy_tensorflow the original TensorFlow FID's bilinear).")
        if not isinstance(self.settings.quantize, bool):
            raise ConfigError(f"quantize={self.settings.quantize!r} must be true (images to uint8 as a PNG holds "
                              f"them, as stylegan2-ada's metrics do) or false (floats as generated, as clean-fid).")
        if self.data.kind == "points":
            return None
        return Preprocess(bool(self.settings.quantize), self.settings.resize if self.is_inception else None)

    @property
    def is_inception(self) -> bool:
        return self.extractor_name == "inception_fid"

    def _resolve_metrics(self, asked: list[str]) -> list[str]:
        if asked == ["auto"]:
            asked = ["modes", "fd", "kid", "pr"] if self.data.kind == "points" else ["fd", "kid", "is", "pr", "dc"]
            if self.extractor is None:  # extractor=raw: no classifier, so no Inception Score
                asked = [m for m in asked if m != "is"]
            if self.extractor_name == "digits_cnn":
                asked.append("classes")
            if self.dataset_cfg is not None and heldout_config(self.dataset_cfg, strict=False) is not None:
                asked.append("memorisation")
            if self.settings.real_stats:  # mu and sigma alone: the Frechet distance, and what needs no real data
                asked = [m for m in asked if m in STATS_ONLY]
        unknown = [m for m in asked if m not in METRICS]
        if unknown:
            raise ConfigError(f"metrics={unknown} not known; valid metrics: {', '.join(METRICS)} (or auto).")
        if "modes" in asked and self.data.name not in MIXTURES:
            raise ConfigError(f"metric `modes` needs a 2D Gaussian mixture ({', '.join(MIXTURES)}), not {self.data.name}.")
        if ("is" in asked or "classes" in asked) and self.extractor is None:
            raise ConfigError("metrics `is` and `classes` need a classifier; 2D points have none.")
        if "classes" in asked and self.extractor_name != "digits_cnn":
            raise ConfigError("metric `classes` needs a classifier of the dataset's own classes (extractor=digits).")
        if self.settings.real_stats and set(asked) - set(STATS_ONLY):
            raise ConfigError(f"metrics={asked}: {', '.join(m for m in asked if m not in STATS_ONLY)} need the real "
                              f"features, but real_stats={self.settings.real_stats} holds only their mean and "
                              f"covariance; with real_stats use metrics among {', '.join(STATS_ONLY)}, or drop real_stats.")
        if "memorisation" in asked:
            if self.dataset_cfg is None:
                raise ConfigError("metric `memorisation` compares samples with a run's training and held-out data; "
                                  "real=/fake= folders have no held-out split. Use it with ckpt=RUN.")
            heldout_config(self.dataset_cfg)  # raises with the fix if there is no held-out split
        return asked

    def _real_stats(self) -> tuple[Tensor, Tensor]:
        return self.real_stats or M.feature_stats(self.real_features)

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
        return embed(self.extractor, x, self.settings.batch_size, self.device, self.prep)

    def _reference(self, split: str, data: GanData) -> tuple[Tensor, Tensor | None, dict]:
        """Real features of `data` (the `split`), from the cache when the same content and protocol computed them."""
        key = {"split": split, "extractor": self.extractor_name, "weights": getattr(self.extractor, "weights_hash", ""),
               "num_real": self.settings.num_real, "seed": self.settings.seed,
               "preprocess": None if self.prep is None else self.prep.describe()}
        return reference_features(data, key, self.settings.cache_dir,
                                  lambda: self._embed(real_samples(data, self.settings.num_real, self.settings.seed)))

    # ------------------------------------------------------------------ evaluation
    def __call__(self, sample: Callable[[int, int], Tensor],
                 fake_data: GanData | None = None) -> tuple[dict[str, float], dict[str, Any]]:
        """`sample(num, seed)` -> generated samples on the CPU (drawn from `fake_data` when they are a set of
        images rather than a generator's); returns (metrics, protocol)."""
        start = time.perf_counter()
        fake = sample(self.settings.num_fake, self.settings.seed)
        timings = {"generate": time.perf_counter() - start}
        source = "generator" if fake_data is None else fake_data.name
        self.fake_side = describe(source, tuple(fake.shape[1:]), fake.dtype == torch.uint8, self.prep,
                                  self._resize_words, "as generated")
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
            return {fd_name: M.frechet_distance(*self._real_stats(), *M.feature_stats(fake_feats))}
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
            "resize": self._resize_words,
            **({} if self.prep is None else self.prep.describe()),
            "preprocessing": self._preprocessing(),
            "dataset": self.data.name,
            "num_real": len(self.real_features) if self.real_stats is None else None,
            "num_heldout": None if self.heldout_features is None else len(self.heldout_features),
            "num_fake": self.settings.num_fake,
            "seed": self.settings.seed,
            "reference_sha256": self.reference["sha256"],
            "reference_fingerprint": self.reference["fingerprint"],
            "reference_cache": self.reference["cache"],
            **({"real_stats": self.settings.real_stats} if self.settings.real_stats else {}),
            **({"saved_stats": self.settings.save_stats} if self.settings.save_stats else {}),
            **({"heldout_fingerprint": self.heldout["fingerprint"]} if self.heldout else {}),
            **self._metric_protocol(),
            "seconds": {k: round(v, 3) for k, v in timings.items()},
        }

    @property
    def _resize_words(self) -> str:
        return self.settings.resize if self.is_inception else getattr(self.extractor, "resize", "none (raw values)")

    def _real_side(self) -> dict[str, Any]:
        trained = (self.dataset_cfg or {}).get("xflip")
        return describe(self.data.name, tuple(self.data.shape), stored_uint8(self.data), self.prep, self._resize_words,
                        "none (the reference is unflipped" + ("; training flipped it, dataset.xflip=true)" if trained
                                                              else ")"))

    def _preprocessing(self) -> dict[str, Any]:
        """Both sides' preparation, and what differs between them (gan_cli.metrics.sides)."""
        if self.real_stats is not None:
            real = {"source": f"real_stats={self.settings.real_stats}",
                    **((self.reference.get("file_protocol") or {}).get("preprocessing", {}).get("real") or
                       {"note": "unknown: the statistics file does not record how its images were prepared"})}
        else:
            real = self._real_side()
        fake = getattr(self, "fake_side", None)
        return {"real": real, "generated": fake, "differences": differences(real, fake) if fake else []}

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
    """The same dataset's held-out split, whole: digits split=heldout, torchvision train=false (no subset)."""
    cfg = OmegaConf.create(OmegaConf.to_container(dataset_cfg, resolve=True))
    if cfg.get("subset") is not None:
        cfg.subset = None
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
