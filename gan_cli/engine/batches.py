"""An endless, resumable stream of training batches.

Each epoch is a permutation drawn from (seed, epoch), so the stream's whole state is the
number of batches consumed: a resumed run sees exactly the batches it would have seen.
In-memory datasets are moved to the device once and indexed there (no DataLoader, no
host-device copy per step); others go through a DataLoader with workers and pinned memory.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from gan_cli.data.base import GanData
from gan_cli.errors import ConfigError


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of indices over endless epochs, starting after `start` batches."""

    def __init__(self, size: int, batch_size: int, seed: int, start: int = 0):
        self.size, self.batch_size, self.seed, self.start = size, batch_size, seed, start
        self.per_epoch = size // batch_size  # full batches only

    def epoch_order(self, epoch: int) -> Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=g)

    def index_batches(self, device: torch.device | None = None) -> Iterator[Tensor]:
        """Index tensors of shape (batch_size,), each epoch's order moved to `device` once."""
        epoch, offset = divmod(self.start, self.per_epoch)
        while True:
            order = self.epoch_order(epoch).to(device)
            for b in range(offset, self.per_epoch):
                yield order[b * self.batch_size : (b + 1) * self.batch_size]
            epoch, offset = epoch + 1, 0

    def __iter__(self) -> Iterator[list[int]]:
        return (idx.tolist() for idx in self.index_batches())


class BatchStream:
    """`next()` gives `(x, y)` on the device; `consumed` is the resume state."""

    def __init__(self, data: GanData, batch_size: int, device: torch.device, seed: int,
                 num_workers: int = 2, consumed: int = 0):
        if batch_size > len(data):
            raise ConfigError(
                f"trainer.batch_size={batch_size} is larger than the dataset ({len(data)} samples in "
                f"{data.name or 'the dataset'}). Use trainer.batch_size={len(data)} or less."
            )
        self.data, self.batch_size, self.device, self.seed = data, batch_size, device, seed
        self.num_workers = num_workers
        self.consumed = consumed
        self._iter = self._start()

    def _start(self) -> Iterator[tuple[Tensor, Tensor]]:
        sampler = EpochBatchSampler(len(self.data), self.batch_size, self.seed, start=self.consumed)
        if self.data.in_memory:
            x, y = (t.to(self.device) for t in self.data.dataset.tensors)
            return ((x[idx], y[idx]) for idx in sampler.index_batches(self.device))
        loader = DataLoader(
            self.data.dataset, batch_sampler=sampler, num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda", persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),  # worker seeds; leaves the global RNG alone
        )
        return ((x.to(self.device, non_blocking=True), torch.as_tensor(y).to(self.device, non_blocking=True))
                for x, y in loader)

    def restart(self, consumed: int) -> None:
        """Continue as if `consumed` batches had been taken (after a rollback)."""
        self.consumed = consumed
        self._iter = self._start()

    def next(self) -> tuple[Tensor, Tensor]:
        batch = next(self._iter)
        self.consumed += 1
        return batch
