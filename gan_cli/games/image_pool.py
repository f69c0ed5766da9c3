"""A history of generated images (Shrivastava et al. 2017; CycleGAN): D sees past fakes too.

Each new fake enters the pool until it holds `size`; after that, with probability 1/2 D is
shown a stored fake instead (which the new one replaces), otherwise the new fake itself.
The draws come from the pool's own generator, so a resumed run makes the same choices.
"""
from __future__ import annotations

import torch
from torch import Tensor


class ImagePool:
    def __init__(self, size: int, seed: int):
        self.size = size
        self.images: list[Tensor] = []
        self.rng = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def query(self, fakes: Tensor) -> Tensor:
        """What D is shown for `fakes` (B, ...): a batch of the same shape, detached."""
        fakes = fakes.detach()
        if self.size == 0:
            return fakes
        out = []
        for image in fakes:
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.rng) < 0.5:
                i = int(torch.randint(self.size, (), generator=self.rng))
                out.append(self.images[i])
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        images = torch.stack(self.images).cpu() if self.images else torch.empty(0)
        return {"images": images, "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.images = [image.to(device) for image in state["images"]]
        self.rng.set_state(state["rng"])
