"""`gan train` / `python -m gan_cli.train`: the Hydra app around `engine.train`."""
from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from gan_cli.config import config_dir, register_schema
from gan_cli.engine.trainer import train
from gan_cli.hydra_app import report_errors
from gan_cli.logging.console import print_config_tree

register_schema()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
@report_errors
def main(cfg: DictConfig) -> float | None:
    hc = HydraConfig.get()
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra/") and v is not None}
    print_config_tree(cfg, choices)
    result = train(cfg, hc.runtime.output_dir, choices)
    if result["interrupted"]:
        sys.exit(130)
    return objective(cfg, result)


def objective(cfg: DictConfig, result: dict) -> float | None:
    """What a sweeper (e.g. Optuna) optimises: the final `trainer.eval.best` metric, else loss/G."""
    best = cfg.trainer.eval.best
    return result.get(best) if best else result.get("loss/G")


if __name__ == "__main__":
    main()
