"""What image-to-image translation games share: inputs are images, not noise.

A sample is the translation of a held-out input (`GanData.test`); the fixed grid shows
held-out inputs next to their outputs; evaluation compares outputs with known targets.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from gan_cli.games.base import Game, eval_mode
from gan_cli.logging.pictures import image_grid

GRID_ROWS = 8  # examples in the fixed grid: one row each


class Translation(Game):
    real_index: ClassVar[int] = 1  # items are (a, b, ...): b is what the generator outputs
    unsupported: ClassVar[dict[str, Any]] = {  # remedies of the noise game that have no meaning here yet
        "augment": [], "instance_noise": 0.0, "mode_seeking": 0.0, "unroll_steps": 0, "ada.enabled": False,
        "lecam.weight": 0.0, "bcr.real": 0.0, "bcr.fake": 0.0, "zcr.d": 0.0, "zcr.g": 0.0}

    def fixed_inputs(self, num: int, seed: int) -> dict[str, Tensor]:
        """Held-out inputs (and their targets or B-domain examples): the first min(num, 8)."""
        test = self.data.test
        b = test.targets if test.targets is not None else test.domain_b
        n = min(num, GRID_ROWS, len(test.inputs), len(b))  # unpaired held-out domains may differ in count
        return {"a": test.inputs[:n].clone(), "b": b[:n].clone()}

    def real_picture(self, num: int) -> Tensor:
        count = min(len(self.data), num, 64)
        return image_grid(torch.stack([torch.cat(_rgb_all(self.data.dataset[i][:2]), 2) for i in range(count)]),
                          nrow=max(1, int(count ** 0.5)))

    def fresh_outputs(self, networks: dict[str, nn.Module], count: int, device: torch.device) -> Tensor:
        """Translations of `count` random training inputs."""
        dataset = self.data.dataset
        idx = torch.randint(len(dataset), (count,)).tolist()
        a = torch.stack([dataset[i][0] for i in idx]).to(device)
        with torch.no_grad(), eval_mode(networks):
            return networks[self.translators["ab"]](a)

    @classmethod
    def evaluator(cls, dataset_cfg, data, settings, device):
        from gan_cli.metrics.translation_quality import TranslationEvaluator

        evaluate = TranslationEvaluator(dataset_cfg, data, settings, device)

        def run(networks: dict[str, nn.Module]):
            with eval_mode(networks):
                directions = {d: translator(networks[name], device, settings.batch_size)
                              for d, name in cls.translators.items()}
                return evaluate(directions["ab"], directions.get("ba"))
        return run


def translator(G: nn.Module, device: torch.device, batch_size: int):
    """x (N, C, H, W) on the CPU -> G(x) on the CPU, in batches, without gradients."""
    @torch.no_grad()
    def translate(x: Tensor) -> Tensor:
        return torch.cat([G(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])
    return translate


def _rgb_all(images) -> list[Tensor]:
    return [x.expand(3, *x.shape[1:]) if x.shape[0] == 1 else x for x in images]


def rows_picture(columns: list[Tensor]) -> Tensor:
    """One row per example: columns[j][i] is the j-th image of example i. (N, C, H, W) each -> (3, H', W')."""
    columns = [c.detach().float().cpu() for c in columns]
    columns = [c.expand(-1, 3, -1, -1) if c.shape[1] == 1 else c for c in columns]
    tiles = torch.stack(columns, 1).flatten(0, 1)  # (N * len(columns), 3, H, W), row-major
    return image_grid(tiles, nrow=len(columns))
