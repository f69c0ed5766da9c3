"""Pick the device a run trains on and say why."""
from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from gan_cli.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA, then MPS, then CPU; an explicit device must exist here."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"trainer.device={name!r} is not a device name. Valid values: auto, cpu, cuda, cuda:N, mps."
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.device={name} but CUDA is not available on this machine "
                f"(torch {torch.__version__} sees no CUDA GPU). Use trainer.device=auto or trainer.device=cpu."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"trainer.device={name} but this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})."
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.device=mps but MPS is not available here. Use trainer.device=auto or cpu.")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"trainer.device={name!r} is not supported. Valid values: auto, cpu, cuda, cuda:N, mps.")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu ({threads} thread{'s' if threads > 1 else ''})"
    return str(device)


def device_for_job(name: str, job_num: int | None, gpu_count: int | None = None) -> torch.device:
    """The device of one job of a sweep: with `auto`, job N of a multirun on a machine with
    G > 1 CUDA GPUs takes `cuda:(N % G)`, so jobs launched side by side (joblib, submitit on a
    multi-GPU node) spread over the GPUs. Anything else resolves as `resolve_device`.

    `job_num` is Hydra's `hydra.job.num` (None outside a multirun); `gpu_count` defaults to
    `torch.cuda.device_count()`.
    """
    if name == "auto" and job_num is not None:
        gpus = torch.cuda.device_count() if gpu_count is None else gpu_count
        if gpus > 1:
            return torch.device("cuda", job_num % gpus)
    return resolve_device(name)


@contextlib.contextmanager
def claimed_gpu(name: str, device: torch.device, job_num: int | None, gpu_count: int | None = None,
                lock_dir: Path | None = None) -> Iterator[torch.device]:
    """The GPU a multirun job trains on, held for the job: with `auto`, job N prefers `cuda:(N % G)` but takes
    the next GPU no other job holds, so a worker that joblib reuses (or a job that outlives its neighbours)
    never shares a GPU with another job. Held with a lock file per GPU (`gan_cli-cuda<i>.lock` in the
    system's temporary folder), released when the job ends, also when it dies. Other devices pass through."""
    if name != "auto" or job_num is None or device.type != "cuda" or device.index is None:
        yield device
        return
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the preference alone
        yield device
        return
    gpus = torch.cuda.device_count() if gpu_count is None else gpu_count
    folder = Path(lock_dir or tempfile.gettempdir())
    for i in ((device.index + k) % gpus for k in range(gpus)):
        handle = open(folder / f"gan_cli-cuda{i}.lock", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        try:
            yield torch.device("cuda", i)
        finally:
            handle.close()  # closing releases the lock
        return
    from gan_cli.logging import console as ui

    ui.console.print(f"[yellow]Every one of the {gpus} GPUs is held by another gan_cli job: job {job_num} shares "
                     f"{device} (hydra.launcher.n_jobs above the number of GPUs?).[/]")
    yield device
