"""mnist / fashion_mnist / cifar10 from their on-disk files (gan_cli.data.vision's readers; nothing downloads)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from gan_cli.prep.writer import PreparedWriter

CLASS_NAMES = {"cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}


def prepare_torchvision(cfg: DictConfig, out: Path) -> dict:
    from gan_cli.data import vision

    data = getattr(vision, str(cfg.source))(root=str(cfg.root), resolution=int(cfg.resolution), download=False)
    count = len(data) if cfg.max_images is None else min(len(data), int(cfg.max_images))
    writer = PreparedWriter(out)
    try:
        for i in range(count):
            x, y = data.dataset[i]  # (C, R, R) in [-1, 1]
            img = np.clip(np.rint((x.numpy() + 1) * 127.5), 0, 255).astype(np.uint8)
            if cfg.channels != img.shape[0]:
                img = np.repeat(img, 3, 0) if cfg.channels == 3 else np.rint(img.mean(0, keepdims=True)).astype(np.uint8)
            writer.add(img, int(y))
        manifest = {"source": str(cfg.source), "kind": "image", "options": OmegaConf.to_container(cfg, resolve=True),
                    "num_classes": 10, "class_names": CLASS_NAMES.get(str(cfg.source), [str(i) for i in range(10)]),
                    "skipped_count": 0, "skipped": []}
        return writer.finish(manifest, cfg.overwrite)
    except BaseException:
        writer.abandon()
        raise
