"""`gan eval`: metrics of a trained run's generators, as a table, as <run>/eval.json (the latest) and in
<run>/evals/ (every protocol evaluated: gan_cli.metrics.history)."""
from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from gan_cli.config import check_eval_sizes, check_truncation, config_dir
from gan_cli.checkpoint import find_checkpoint
from gan_cli.errors import ConfigError
from gan_cli.interrupt import ctrl_c_held
from gan_cli.hydra_app import ensure_parent, report_errors, write_error
from gan_cli.logging.console import console, print_metrics


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
@report_errors
def main(cfg: DictConfig) -> dict:
    check_eval_sizes(cfg)
    check_truncation(cfg.get("truncation"))
    check_sides(cfg)
    if cfg.out:
        ensure_parent(Path(cfg.out))  # before minutes of sampling, not after
    if cfg.ckpt is not None:
        find_checkpoint(cfg.ckpt, key="ckpt")  # a wrong path is reported before seconds of importing torch
    with ctrl_c_held():  # torch: imported once the config is checked, and not cut in half by a Ctrl-C
        from gan_cli.engine.device import resolve_device
        from gan_cli.metrics.evaluate import EvalSettings
        from gan_cli.metrics.history import record, write_json_atomic

    device = resolve_device(cfg.device)
    settings = EvalSettings.from_config(cfg)
    if cfg.ckpt is None:  # real=PATH fake=PATH
        from gan_cli.metrics.compare import compare

        results, protocol = compare(cfg, settings, device)
        if not cfg.fake:  # real=PATH save_stats=FILE: statistics only, no evaluation to keep
            console.print(f"wrote [bold]{cfg.save_stats}[/]: mu and sigma of {protocol['num_real']} real samples "
                          f"({protocol['extractor']} features)")
            return {}
        out = Path(cfg.out or "eval.json")
    else:
        results, protocol, run_dir = evaluate_run(cfg, settings, device)
        out = Path(cfg.out) if cfg.out else run_dir / "eval.json"
    ensure_parent(out)
    try:  # the history entry of this protocol beside it, then the latest result; both atomic
        entry = record(out.parent, results, protocol)
        write_json_atomic({"metrics": results, "protocol": protocol}, out)
    except OSError as e:
        raise write_error(out, e) from e
    print_metrics(results, protocol)
    differ = (protocol.get("preprocessing") or {}).get("differences")
    if differ:
        console.print(f"[yellow]warning[/]: the real and generated images were not prepared alike: {'; '.join(differ)} "
                      f"(protocol.preprocessing in {out.name}); such gaps are not the generator's.",
                      highlight=False, soft_wrap=True)
    console.print(f"wrote [bold]{out}[/] (kept in {entry.parent}/ as {entry.name})")
    return results


def check_sides(cfg: DictConfig) -> None:
    """ckpt=RUN, or real=PATH with fake=PATH (or save_stats=FILE alone, or real_stats=FILE with fake=PATH)."""
    if cfg.ckpt is not None:
        if cfg.real or cfg.fake:
            raise ConfigError(f"ckpt={cfg.ckpt} with {'real' if cfg.real else 'fake'}=...: a run is scored against "
                              f"its own dataset (or real_stats=FILE.npz); real=PATH fake=PATH compare two sets of "
                              f"images without a checkpoint. Give one or the other.")
        return
    if cfg.get("truncation") is not None:
        raise ConfigError("truncation= samples a generator: it needs ckpt=RUN, not real=/fake= images.")
    if cfg.real and cfg.real_stats:
        raise ConfigError("real= and real_stats= both give the reference; give one of them.")
    if not (cfg.real or cfg.real_stats) or not (cfg.fake or (cfg.real and cfg.save_stats)):
        raise ConfigError("gan eval needs ckpt=RUN (a checkpoint or run folder), or two sets to compare: "
                          "real=PATH fake=PATH (each a folder of images, a prepared dataset or an .npz of samples), "
                          "real_stats=FILE.npz fake=PATH, or real=PATH save_stats=FILE.npz to write statistics only.")


def evaluate_run(cfg: DictConfig, settings, device) -> tuple[dict, dict, Path]:
    """The metrics of the checkpoint's generators against its dataset: (results, protocol, run folder)."""
    from gan_cli.engine.restore import load_generator
    from gan_cli.truncation import check_supported

    run = load_generator(cfg.ckpt, device, ema=cfg.ema)
    check_supported(next(iter(run.networks.values())), cfg.get("truncation"), run.model_name)
    if run.game.translators and (cfg.real_stats or cfg.save_stats):
        raise ConfigError(f"real_stats= / save_stats= are reference statistics of generated images; {run.checkpoint} "
                          f"is a translation run ({run.model_name}), scored on its held-out pairs. Drop them.")
    evaluate = run.game.evaluator(run.config.dataset, None, settings, device)
    results, protocol = evaluate(run.networks)
    protocol.update({"checkpoint": str(run.checkpoint), "step": run.step,
                     "generator": "ema" if run.used_ema else "live", "device": str(device),
                     **({"truncation": cfg.truncation} if cfg.get("truncation") is not None else {})})
    return results, protocol, run.run_dir


if __name__ == "__main__":
    main()
