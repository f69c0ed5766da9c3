"""A run's settings of the process: CPU threads, backend flags (TF32, cuDNN, determinism), sync debug
mode, memory readings. `train` gives the flags back after the run."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


def configure_threads(threads: int, data_kind: str) -> int:
    """torch's CPU threads: `threads` when set, else 1 for 2D data (ops of a few microseconds lose more to
    synchronising threads than they gain, and collapse when another process shares the cores), else
    torch's default (one per core, or OMP_NUM_THREADS). Returns the number in use."""
    if threads > 0:
        torch.set_num_threads(threads)
    elif data_kind == "points" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    return torch.get_num_threads()


def configure_backends(device: torch.device, tf32: bool, deterministic: bool = False) -> None:
    """Backend flags for a run (`train` restores the previous ones afterwards: `backend_state`)."""
    if deterministic:  # cuBLAS needs its workspace fixed before its first call
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = not deterministic  # fixed shapes: let cuDNN pick its fastest kernels
        torch.backends.cudnn.deterministic = deterministic


def backend_state() -> tuple:
    """The backend flags a run may change, to give back afterwards with `restore_backends`."""
    return (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark,
            torch.backends.cudnn.deterministic, torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled())


def restore_backends(state: tuple) -> None:
    (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark,
     torch.backends.cudnn.deterministic, deterministic, warn_only) = state
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


@contextlib.contextmanager
def sync_debug(mode: str, device: torch.device) -> Iterator[None]:
    """trainer.sync_debug on a CUDA device: torch warns (warn) or raises (error) at any operation that makes
    the host wait on the GPU inside the block. Nothing on other devices."""
    if mode == "off" or device.type != "cuda":
        yield
        return
    torch.cuda.set_sync_debug_mode(mode)
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(0)


def peak_memory_gb(device: torch.device) -> float:
    """Peak memory: allocated on the GPU, or the process's resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
