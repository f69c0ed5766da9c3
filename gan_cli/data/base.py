"""What every dataset builder returns: a dataset plus the facts models need to size themselves."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch.utils.data import Dataset, TensorDataset


@dataclass
class GanData:
    """A dataset of ``(x, y)`` items and its shape.

    ``x`` is a float tensor in [-1, 1]: ``(C, H, W)`` for images, ``(2,)`` for points.
    ``y`` is an int64 class label, or -1 for unlabelled data.
    A ``TensorDataset`` (all items in memory) lets the trainer sample batches by indexing,
    with no DataLoader; anything else is streamed through a DataLoader.
    """

    dataset: Dataset
    kind: Literal["image", "points"]
    shape: tuple[int, ...]
    num_classes: int = 0
    name: str = ""

    @property
    def in_memory(self) -> bool:
        return isinstance(self.dataset, TensorDataset)

    def __len__(self) -> int:
        return len(self.dataset)
