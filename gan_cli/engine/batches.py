"""An endless, resumable stream of training batches.

Each epoch is a permutation drawn from (seed, epoch), so the stream's whole state is the
number of batches consumed: a resumed run sees exactly the batches it would have seen.
In-memory datasets are moved to the device once and indexed there (no DataLoader, no
host-device copy per step); others go through a DataLoader with workers and pinned memory.
Whatever way reading ends (done, an error in a worker, an error in training), the workers are
stopped; a worker's error ends the run as one DataError paragraph.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import replace

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler, TensorDataset

from gan_cli.data import unreadable
from gan_cli.data.base import GanData
from gan_cli.host_copy import to_device
from gan_cli.interrupt import ignore_stop_signals
from gan_cli.errors import ConfigError, DataError, GanCliError


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of indices over endless epochs, starting after `start` batches.

    With `world` processes every global batch of `world * batch_size` indices is split in
    rank order, so the ranks' batches together are exactly one process's batch of that size.
    """

    def __init__(self, size: int, batch_size: int, seed: int, *, start: int = 0, rank: int = 0, world: int = 1):
        self.size, self.batch_size, self.seed, self.start = size, batch_size, seed, start
        self.rank, self.world = rank, world
        self.per_epoch = size // (batch_size * world)  # full global batches only

    def epoch_order(self, epoch: int) -> Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=g)

    def index_batches(self, device: torch.device | None = None) -> Iterator[Tensor]:
        """Index tensors of shape (batch_size,), each epoch's order moved to `device` once."""
        epoch, offset = divmod(self.start, self.per_epoch)
        while True:
            order = self.epoch_order(epoch)
            order = order if device is None else to_device(order, device)
            for b in range(offset, self.per_epoch):
                start = (b * self.world + self.rank) * self.batch_size
                yield order[start : start + self.batch_size]
            epoch, offset = epoch + 1, 0

    def __iter__(self) -> Iterator[list[int]]:
        return (idx.tolist() for idx in self.index_batches())


def materialize(data: GanData, limit_gb: float, num_workers: int) -> GanData:
    """A streamed dataset small enough (at most `limit_gb` as float32) read once into memory,
    so that training indexes it on the device and never waits on a DataLoader (MNIST, CIFAR)."""
    floats = math.prod(data.shape) + (math.prod(data.input_shape) if data.input_shape else 0)  # per item
    if data.in_memory or len(data) * floats * 4 > limit_gb * 2**30:
        return data
    loader = DataLoader(data.dataset, batch_size=512, num_workers=num_workers, generator=torch.Generator(),
                        worker_init_fn=ignore_stop_signals, collate_fn=unreadable.collate)
    workers = iter(loader)
    try:
        columns = zip(*(tuple(torch.as_tensor(t) for t in batch) for batch in _batches(workers, data)))  # x, ..., y
        return replace(data, dataset=TensorDataset(*(torch.cat(c) for c in columns)))
    finally:
        _stop(workers)


def _batches(workers: Iterator, data: GanData) -> Iterator:
    """The batches of a DataLoader's iterator, with the files its workers skipped named; any error in a
    worker (a torch re-raise holding the worker's traceback, or a worker that died) as one DataError."""
    try:
        for batch in workers:
            yield unreadable.unpack(batch)
    except Exception as err:
        lines = str(err).strip().splitlines() or [type(err).__name__]
        cause = lines[-1].split(": ", 1)[-1] if "Original Traceback" in str(err) else lines[-1]
        if isinstance(err, GanCliError):
            raise type(err)(cause) from err
        raise DataError(f"Reading {data.name or 'the dataset'} failed in a DataLoader worker: {type(err).__name__}: "
                        f"{cause}. trainer.num_workers=0 reads in the main process instead; HYDRA_FULL_ERROR=1 "
                        f"shows the traceback.") from err


def _stop(workers: Iterator | None) -> None:
    """Stop a DataLoader's workers now. They ignore stop signals, and so the SIGTERM with which torch
    ends a worker that does not finish in 5 s and multiprocessing's exit handler ends them all (it
    would then wait for ever): they are told to finish, and one still busy after that is killed."""
    shutdown = getattr(workers, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()
    for worker in getattr(workers, "_workers", ()):
        if worker.is_alive():
            worker.kill()
            worker.join()


class BatchStream:
    """`next()` gives one batch of every item field on the device: `(x, y)`, or `(a, b, y)` and
    `(a, b, y_a, y_b)` for translation data; `consumed` is the resume state; `waited_s` the host time
    spent in `next()` so far (perf/data_ms). A dataset's `decode` maps `x` (image data) or, for translation
    data, the whole batch (its uint8 a and b: gan_cli.data.prepared.DecodeFields)."""

    def __init__(self, data: GanData, batch_size: int, device: torch.device, *, seed: int = 0,
                 num_workers: int = 2, consumed: int = 0, rank: int = 0, world: int = 1):
        if batch_size * world > len(data):
            largest = len(data) // world
            raise ConfigError(
                f"trainer.batch_size={batch_size}{f' x {world} processes' if world > 1 else ''} is larger than the "
                f"dataset ({len(data)} samples in {data.name or 'the dataset'}). Use trainer.batch_size={largest} or less."
            )
        self.rank, self.world = rank, world
        self.data, self.batch_size, self.device, self.seed = data, batch_size, device, seed
        self.num_workers = num_workers
        self.consumed = consumed
        self.waited_s = 0.0
        self._workers = None  # the DataLoader's iterator, when the data is streamed
        self._iter: Iterator[tuple[Tensor, ...]] | None = None  # started by the first batch asked for

    def _start(self) -> Iterator[tuple[Tensor, ...]]:
        sampler = EpochBatchSampler(len(self.data), self.batch_size, self.seed, start=self.consumed, rank=self.rank,
                                    world=self.world)
        if self.data.in_memory:
            tensors = [t.to(self.device) for t in self.data.dataset.tensors]
            return (tuple(t.index_select(0, idx) for t in tensors) for idx in sampler.index_batches(self.device))
        if hasattr(self.data.dataset, "gather"):  # memory-mapped: one batch read on the host, copied pinned
            return (tuple(to_device(t, self.device) for t in self.data.dataset.gather(idx))
                    for idx in sampler.index_batches())
        loader = DataLoader(
            self.data.dataset, batch_sampler=sampler, num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda", persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),  # worker seeds; leaves the global RNG alone
            worker_init_fn=ignore_stop_signals,  # the main process finishes the iteration, then stops them
            collate_fn=unreadable.collate,  # the batch, and the files skipped while reading it
        )
        return self._stream(loader)

    def _stream(self, loader: DataLoader) -> Iterator[tuple[Tensor, ...]]:
        self._workers = iter(loader)  # the workers start with the first batch asked for
        for batch in _batches(self._workers, self.data):
            yield tuple(torch.as_tensor(t).to(self.device, non_blocking=True) for t in batch)

    def restart(self, consumed: int) -> None:
        """Continue as if `consumed` batches had been taken (after a rollback)."""
        self.close()
        self.consumed = consumed
        self._iter = None

    def close(self) -> None:
        """Stop the DataLoader workers now (see `_stop`)."""
        _stop(self._workers)
        self._workers = None

    def next(self) -> tuple[Tensor, ...]:
        """The next batch; a prepared dataset's images are valid until the next call (Decode reuses its buffer)."""
        start = time.perf_counter()  # the host's clock only: no device sync
        if self._iter is None:
            self._iter = self._start()
        batch = next(self._iter)
        decode = self.data.decode
        if decode is not None:  # uint8 images -> [-1, 1] floats, on the device
            if self.data.translation:  # a and b: the decoder takes the whole batch (a buffer per field)
                batch = decode(batch, self.consumed)
            else:
                batch = (decode(batch[0], self.consumed), *batch[1:])
        self.consumed += 1
        self.waited_s += time.perf_counter() - start
        return batch
