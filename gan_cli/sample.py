"""`gan sample`: a PNG grid or an .npz of samples from a trained generator (the work: gan_cli.sampling).

This module imports no torch, so that `--help` and config errors answer at once.
"""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from gan_cli.config import check_positive_ints, check_truncation, config_dir
from gan_cli.checkpoint import find_checkpoint
from gan_cli.interrupt import ctrl_c_held
from gan_cli.hydra_app import report_errors


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="sample")
@report_errors
def main(cfg: DictConfig) -> None:
    check_positive_ints(cfg, ("num", "batch_size") + (("interp_steps",) if cfg.mode == "interp" else ()))
    check_truncation(cfg.get("truncation"))
    find_checkpoint(cfg.ckpt, key="ckpt")  # a wrong path is reported before seconds of importing torch
    with ctrl_c_held():  # seconds of imports, which a Ctrl-C must not cut in half
        from gan_cli.sampling import sample

    sample(cfg)


if __name__ == "__main__":
    main()
