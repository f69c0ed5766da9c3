"""A history of generated images (Shrivastava et al. 2017; CycleGAN): D sees past fakes too.

Each new fake enters the pool until it holds `size`; after that, with probability 1/2 D is
shown a stored fake instead (which the new one replaces), otherwise the new fake itself.
The choices for a whole batch are made on the host from the pool's own `random.Random`
(saved in the checkpoint, so a resumed run makes the same ones), then applied with two
gathers on the device: no device value is read and no Python loop runs tensor ops per image.
"""
from __future__ import annotations

import random

import torch
from torch import Tensor

from gan_cli.host_copy import to_device


class ImagePool:
    def __init__(self, size: int, seed: int):
        self.size = size
        self.images: Tensor | None = None  # (filled, ...) on the device
        self.rng = random.Random(seed)

    @property
    def filled(self) -> int:
        return 0 if self.images is None else len(self.images)

    def plan(self, batch: int) -> tuple[list[int], list[int]]:
        """Indices into cat(pool, fakes): what D is shown, and the pool afterwards."""
        slots = list(range(self.filled))  # slot -> index into cat(pool, fakes)
        shown = []
        for i in range(batch):
            new = self.filled + i
            if len(slots) < self.size:
                slots.append(new)
                shown.append(new)
            elif self.rng.random() < 0.5:
                j = self.rng.randrange(self.size)
                shown.append(slots[j])
                slots[j] = new
            else:
                shown.append(new)
        return shown, slots

    @torch.no_grad()
    def query(self, fakes: Tensor) -> Tensor:
        """What D is shown for `fakes` (B, ...): a batch of the same shape, detached, fp32 (the pool is state)."""
        fakes = fakes.detach().float()
        if self.size == 0:
            return fakes
        shown, slots = self.plan(len(fakes))
        both = fakes if self.images is None else torch.cat([self.images, fakes])
        index = to_device(shown + slots, fakes.device)
        picked = both[index]
        self.images = picked[len(shown):]
        return picked[: len(shown)]

    def state_dict(self) -> dict:
        version, state, gauss = self.rng.getstate()
        images = self.images.cpu() if self.images is not None else torch.empty(0)
        return {"images": images, "random": {"version": version, "state": list(state), "gauss": gauss}}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        images = state["images"]
        self.images = images.to(device) if images.numel() else None
        saved = state.get("random")
        if saved is not None:
            self.rng.setstate((saved["version"], tuple(saved["state"]), saved["gauss"]))
        else:  # a checkpoint from before the host-side choices: a stream seeded from its generator state
            self.rng.seed(int(state["rng"].to(torch.int64).sum()))
