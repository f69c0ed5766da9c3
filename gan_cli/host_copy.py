"""Host-to-device copies that do not make the host wait.

A plain `tensor.to("cuda")` from pageable memory synchronises the stream. From pinned memory
with `non_blocking=True` it is queued like a kernel; torch's pinned-memory allocator keeps the
source alive until the copy has run.
"""
from __future__ import annotations

import torch
from torch import Tensor


def to_device(values: Tensor | list, device: torch.device) -> Tensor:
    """`values` (a host tensor or a list of numbers) on `device`, without a host-device
    synchronisation. Host data enters a training step only through here."""
    tensor = values if isinstance(values, Tensor) else torch.tensor(values)
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)
