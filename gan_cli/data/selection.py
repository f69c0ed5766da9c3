"""`dataset.subset` and `dataset.classes`: train on part of any dataset.

`classes` keeps the items whose label is listed; `subset=N` then keeps the first N of a fixed
shuffle (the same for every run and machine), so that a small-data experiment is repeatable and
N = 100 is a subset of N = 500. Both apply to the split the dataset config names (digits
split=train, a torchvision train split); the held-out split an evaluation compares with stays
whole (gan_cli.metrics.evaluate.heldout_config drops `subset`). The data's fingerprint says which
part was kept, so metric caches never mix them up. The next items of the shuffle, which the run
does not train on, become the data's `heldout` items (the doctor's check for D memorising).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, open_dict
from torch.utils.data import Dataset, Subset, TensorDataset

from gan_cli.build import build
from gan_cli.config import check_int, is_int
from gan_cli.data.base import GanData
from gan_cli.errors import ConfigError

SHUFFLE_SEED = 12345  # the fixed shuffle subsets are drawn from
HELDOUT = 128  # the next items of that shuffle, kept as GanData.heldout for the doctor's memorising check


def build_dataset(node: DictConfig) -> GanData:
    """The dataset `node` describes, cut to its `subset` / `classes` when set."""
    node = node.copy()
    with open_dict(node):
        subset, classes = node.pop("subset", None), node.pop("classes", None)
    return select(build("dataset", node), subset, classes)


def select(data: GanData, subset: Any = None, classes: Any = None) -> GanData:
    if classes is not None:
        data = keep_classes(data, classes)
    if subset is not None:
        size = len(data)
        check_int("dataset.subset", subset, 1, size, f"the first N of a fixed shuffle of the {size} items of "
                                                      f"{data.name or 'the dataset'}; null: all")
        order = torch.randperm(size, generator=torch.Generator().manual_seed(SHUFFLE_SEED)).numpy()
        rest = np.sort(order[subset:subset + HELDOUT])
        data = replace(data, dataset=take(data.dataset, np.sort(order[:subset])),
                       fingerprint=tagged(data.fingerprint, f"subset{subset}"),
                       heldout=take(data.dataset, rest) if len(rest) and not data.translation else None)
    return data


def keep_classes(data: GanData, classes: Any) -> GanData:
    if not data.num_classes:
        raise ConfigError(f"dataset.classes={classes!r} selects images by class, but {data.name or 'this dataset'} "
                          "has no class labels; set dataset.classes=null.")
    wanted = list(classes) if isinstance(classes, Sequence) and not isinstance(classes, str) else None
    if not wanted or not all(is_int(c) and 0 <= c < data.num_classes for c in wanted):
        raise ConfigError(f"dataset.classes={classes!r} must be a list of class labels from 0 to "
                          f"{data.num_classes - 1} ({data.name or 'the dataset'} has {data.num_classes} classes), "
                          "or null for all.")
    labels = labels_of(data)
    rows = np.flatnonzero(np.isin(labels, wanted))
    if not len(rows):
        raise ConfigError(f"dataset.classes={list(wanted)} keeps no item of {data.name or 'the dataset'}.")
    name = "-".join(str(c) for c in sorted(set(wanted)))
    return replace(data, dataset=take(data.dataset, rows), fingerprint=tagged(data.fingerprint, f"classes{name}"))


def labels_of(data: GanData) -> np.ndarray:
    """Every item's class label, without decoding an image."""
    dataset = data.dataset
    if data.kind != "image":
        raise ConfigError(f"dataset.classes selects images by class; {data.name or 'this dataset'} gives "
                          f"{data.kind} data. Set dataset.classes=null.")
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[-1].numpy()
    if hasattr(dataset, "targets"):  # torchvision's datasets and image folders, prepared images
        return np.asarray(dataset.targets)
    raise ConfigError(f"dataset.classes needs the labels of {data.name or 'this dataset'}, which it does not list; "
                      "set dataset.classes=null.")


def take(dataset: Dataset, rows: np.ndarray) -> Dataset:
    """The items at `rows` (ascending), in memory when `dataset` is."""
    if isinstance(dataset, TensorDataset):  # its own class: a prepared translation set's items decode on indexing
        index = torch.from_numpy(rows)
        return type(dataset)(*(t[index] for t in dataset.tensors))
    if hasattr(dataset, "rows"):  # a dataset that reads its own rows cheaply (memory-mapped prepared images)
        return dataset.rows(rows)
    return Subset(dataset, rows.tolist())


def tagged(fingerprint: str, part: str) -> str:
    return f"{fingerprint}:{part}" if fingerprint else ""
