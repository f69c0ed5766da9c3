"""`gan train` / `python -m gan_cli.train`: the Hydra app around `engine.train`."""
from __future__ import annotations

import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from gan_cli.config import config_dir, register_schema
from gan_cli.engine.trainer import train
from gan_cli.errors import GanCliError
from gan_cli.logging.console import print_config_tree, print_error

register_schema()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> float | None:
    hc = HydraConfig.get()
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra/") and v is not None}
    print_config_tree(cfg, choices)
    try:
        result = train(cfg, hc.runtime.output_dir, choices)
    except GanCliError as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print_error(str(e), title=type(e).__name__)
        sys.exit(1)
    if result["interrupted"]:
        sys.exit(130)
    return result.get("loss/G")


if __name__ == "__main__":
    main()
