"""`gan eval`: metrics of a trained run's generators, as a table, as <run>/eval.json (the latest) and in
<run>/evals/ (every protocol evaluated: gan_cli.metrics.history)."""
from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from gan_cli.config import check_eval_sizes, check_truncation, config_dir
from gan_cli.checkpoint import find_checkpoint
from gan_cli.interrupt import ctrl_c_held
from gan_cli.hydra_app import ensure_parent, report_errors, write_error
from gan_cli.logging.console import console, print_metrics


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
@report_errors
def main(cfg: DictConfig) -> dict:
    check_eval_sizes(cfg)
    check_truncation(cfg.get("truncation"))
    if cfg.out:
        ensure_parent(Path(cfg.out))  # before minutes of sampling, not after
    find_checkpoint(cfg.ckpt, key="ckpt")  # a wrong path is reported before seconds of importing torch
    with ctrl_c_held():  # torch: imported once the config is checked, and not cut in half by a Ctrl-C
        from gan_cli.engine.device import resolve_device
        from gan_cli.engine.restore import load_generator
        from gan_cli.metrics.evaluate import EvalSettings
        from gan_cli.metrics.history import record, write_json_atomic
        from gan_cli.truncation import check_supported

    device = resolve_device(cfg.device)
    run = load_generator(cfg.ckpt, device, ema=cfg.ema)
    check_supported(next(iter(run.networks.values())), cfg.get("truncation"), run.model_name)
    settings = EvalSettings.from_config(cfg)
    evaluate = run.game.evaluator(run.config.dataset, None, settings, device)
    results, protocol = evaluate(run.networks)
    protocol.update({"checkpoint": str(run.checkpoint), "step": run.step,
                     "generator": "ema" if run.used_ema else "live", "device": str(device),
                     **({"truncation": cfg.truncation} if cfg.get("truncation") is not None else {})})
    out = Path(cfg.out) if cfg.out else run.run_dir / "eval.json"
    ensure_parent(out)
    try:  # the history entry of this protocol beside it, then the latest result; both atomic
        entry = record(out.parent, results, protocol)
        write_json_atomic({"metrics": results, "protocol": protocol}, out)
    except OSError as e:
        raise write_error(out, e) from e
    print_metrics(results, protocol)
    console.print(f"wrote [bold]{out}[/] (kept in {entry.parent}/ as {entry.name})")
    return results


if __name__ == "__main__":
    main()
