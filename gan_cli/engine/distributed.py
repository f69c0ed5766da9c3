"""Data-parallel training with PyTorch's own engine: `torchrun --nproc_per_node=N -m gan_cli.train`.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; each process trains on its shard of every
global batch (batch_size per rank), DistributedDataParallel averages the gradients, and
rank 0 alone logs, samples, evaluates and writes checkpoints.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from gan_cli.engine.compile import eager_module
from gan_cli.errors import ConfigError


CONTROL_TIMEOUT = timedelta(hours=2)  # the longest rank 0 may evaluate while the other ranks wait


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device_name: str) -> World:
    """Join the process group torchrun describes (none when run as one process)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        cuda = device_name != "cpu" and torch.cuda.is_available()
        dist.init_process_group("nccl" if cuda else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def rank_device(device: torch.device, world: World) -> torch.device:
    """One GPU per process: cuda:LOCAL_RANK."""
    if world.distributed and device.type == "cuda":
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return device


def wrap(module: nn.Module, world: World, device: torch.device, sync_bn: bool) -> nn.Module:
    """DDP around a module that has parameters (SyncBatchNorm first, if asked)."""
    if not world.distributed:
        if sync_bn:
            raise ConfigError("trainer.sync_bn=true needs several processes: start with torchrun --nproc_per_node=N.")
        return module
    if sync_bn:
        if device.type != "cuda":
            raise ConfigError("trainer.sync_bn=true needs CUDA GPUs (PyTorch's SyncBatchNorm runs on GPUs only); "
                              "on CPUs each rank keeps its own BatchNorm statistics: use trainer.sync_bn=false.")
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    ids = [device.index] if device.type == "cuda" else None
    # a network that grows (ProGAN) leaves the layers of resolutions not yet reached without gradients
    return nn.parallel.DistributedDataParallel(module, device_ids=ids,
                                               find_unused_parameters=getattr(module, "grows", False))


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside DDP (and inside torch.compile around DDP); a compiled module without DDP as it is."""
    inner = eager_module(module)
    if inner is not module and not isinstance(inner, nn.parallel.DistributedDataParallel):
        return module
    return inner.module if isinstance(inner, nn.parallel.DistributedDataParallel) else inner


def any_rank(flag: bool, world: World, device: torch.device) -> bool:
    """True on every rank if it is true on one (e.g. Ctrl-C seen by one process). Blocking: for the
    end of a run; inside the loop `Control.poll` does the same without waiting."""
    if not world.distributed:
        return flag
    t = torch.tensor(float(flag), device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


class Control:
    """Agreement between ranks that never touches the GPU: a gloo group over host tensors.

    `poll(flag)` all-reduces this iteration's flag in the background and returns the previous
    iteration's result, so every rank stops at the same iteration without waiting on the device
    or on the network. `barrier()` holds the other ranks while rank 0 alone evaluates or writes,
    with a timeout (CONTROL_TIMEOUT) far longer than NCCL's default ten minutes.
    """

    def __init__(self, world: World):
        self.world = world
        self.group = dist.new_group(backend="gloo", timeout=CONTROL_TIMEOUT) if world.distributed else None
        self._pending: tuple[dist.Work, torch.Tensor] | None = None

    def poll(self, flag: bool) -> bool:
        if self.group is None:
            return flag
        seen = self.drain()
        t = torch.tensor([float(flag)])
        self._pending = (dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.group, async_op=True), t)
        return seen

    def drain(self) -> bool:
        """The result of the reduction in flight (False if none), waited for."""
        if self._pending is None:
            return False
        work, t = self._pending
        self._pending = None
        work.wait()
        return bool(t[0] > 0)

    def barrier(self) -> None:
        if self.group is not None:
            dist.barrier(group=self.group)


def gather_objects(obj, world: World) -> list:
    if not world.distributed:
        return [obj]
    out = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def parameters_checksum(module: nn.Module) -> float:
    with torch.no_grad():
        return float(sum(p.double().sum() for p in module.parameters()))
