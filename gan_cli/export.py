"""`gan export`: a trained generator as one file that runs without gan_cli.

`.pt2`: torch.export (`torch.export.load(path).module()(z)`, needs only torch); `.onnx`: the
dynamo-based ONNX exporter (onnxruntime and other runtimes). Inputs: z (N, latent_dim) float32
and, for conditional models, y (N,) int64 labels; translation runs (pix2pix, cyclegan) take images
x (N, C, H, W) in [-1, 1]. N is free: the generator is traced with one batch size and the written
file is checked with another against the PyTorch generator.

This module imports torch only once the config is checked, so that `--help` and config errors answer at once.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig, OmegaConf
from rich.markup import escape

from gan_cli.config import config_dir
from gan_cli.checkpoint import find_checkpoint
from gan_cli.interrupt import ctrl_c_held
from gan_cli.errors import ConfigError, GanCliError
from gan_cli.hydra_app import ensure_parent, report_errors, write_error
from gan_cli.logging.console import Stopwatch, console

if TYPE_CHECKING:
    from torch import Tensor, nn

    from gan_cli.engine.restore import Restored

FORMATS = {".pt2": "torch.export", ".onnx": "ONNX"}
TRACE_BATCH, CHECK_BATCH = 2, 3  # different on purpose: the check also proves the batch size is free
TOLERANCE = 1e-4  # largest |file - PyTorch| accepted: absolute in [-1, 1], relative for larger (unbounded) outputs


class ExportError(GanCliError):
    """The exporter cannot convert the generator, or the written file does not reproduce it."""


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="export")
@report_errors
def main(cfg: DictConfig) -> None:
    for key in ("ckpt", "out"):
        if OmegaConf.is_missing(cfg, key) or cfg[key] is None:
            raise ConfigError(f"{key}= is required: gan export ckpt=RUN out=FILE.pt2 (or out=FILE.onnx).")
    out = Path(cfg.out)
    if out.suffix.lower() not in FORMATS:
        raise ConfigError(f"out={out} must end in .pt2 (torch.export: loads with torch alone) or .onnx "
                          f"(ONNX: onnxruntime and other runtimes).")
    if out.suffix.lower() == ".onnx":
        check_onnx_installed(out)
    find_checkpoint(cfg.ckpt, key="ckpt")  # a wrong path is reported before seconds of importing torch
    ensure_parent(out)
    export(cfg, out)


def check_onnx_installed(out: Path) -> None:
    try:
        import onnx, onnxruntime, onnxscript  # noqa: E401, F401  (the exporter needs onnx and onnxscript)
    except ImportError as e:
        raise ConfigError(f"out={out}: ONNX export needs onnx, onnxscript and onnxruntime ({e}). Install them "
                          f"with pip install 'gan-cli[export]', or export to out=FILE.pt2.") from None


def export(cfg: DictConfig, out: Path) -> None:
    with ctrl_c_held():  # torch: imported once the config is checked, and not cut in half by a Ctrl-C
        from gan_cli.engine.device import resolve_device
        from gan_cli.engine.restore import load_generator

    clock = Stopwatch()
    fmt = out.suffix.lower()
    device = resolve_device(cfg.device if fmt == ".pt2" else "cpu")  # an .onnx file is the same from any device
    run = load_generator(cfg.ckpt, device, ema=cfg.ema)
    G, name = pick_generator(cfg, run)
    write(G, example_inputs(run, cfg.direction, TRACE_BATCH, device), output_name(run), out, fmt)
    inputs = example_inputs(run, cfg.direction, CHECK_BATCH, device, seed=1)
    output, diff = check(G, inputs, out, fmt)
    seconds = clock()
    kb = out.stat().st_size / 1e3
    size = f"{kb / 1e3:.1f} MB" if kb >= 1e3 else f"{kb:.1f} kB"
    no_ema = " (the run has no EMA generator)" if cfg.ema and not run.used_ema else ""
    lines = [f"exported the {'EMA' if run.used_ema else 'live'} generator {name} ({type(G).__name__}, step {run.step}) "
             f"to [bold]{escape(str(out))}[/] ({size}) in {seconds:.1f} s{no_ema}"]
    rows = [("input", k, x) for k, x in inputs.items()] + [("output", output_name(run), output)]
    for what, key, x in rows:
        spec = f"{shape_text(x)} {str(x.dtype).removeprefix('torch.')}"
        lines.append(f"  {what:<7} {key:<7} {spec:<24} {meaning(key, run)}")
    checker = "torch.export.load" if fmt == ".pt2" else "onnxruntime"
    lines.append(f"  checked with {checker} on a batch of {CHECK_BATCH}: max abs difference {diff:.2g} from the "
                 f"PyTorch generator")
    lines.append(f"  load with: {escape(usage(out, fmt, list(inputs), output_name(run)))}")
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)


def pick_generator(cfg: DictConfig, run: Restored) -> tuple[nn.Module, str]:
    """The network to export and its name in the run: G, or the translator of `direction`."""
    translators = run.game.translators
    if not translators:
        if cfg.direction != "ab":
            raise ConfigError(f"direction={cfg.direction} is for translation runs; {run.checkpoint} holds a "
                              f"noise-to-sample model ({run.game.__name__}): leave direction unset.")
        return run.generator, "G"
    if cfg.direction not in translators:
        raise ConfigError(f"direction={cfg.direction} is not a direction of this {run.game.__name__} run; valid: "
                          f"{', '.join(translators)} (ab: A -> B; ba: B -> A, for games with a B -> A generator "
                          f"such as cyclegan).")
    name = translators[cfg.direction]
    return run.networks[name], name


def example_inputs(run: Restored, direction: str, n: int, device, seed: int = 0) -> dict[str, Tensor]:
    """A batch of `n` inputs, by name: z (and y), or images x."""
    import torch

    g = torch.Generator().manual_seed(seed)
    if run.game.translators:
        shape = run.data["shape"] if direction == "ba" else run.data.get("input_shape") or run.data["shape"]
        return {"x": (torch.rand(n, *shape, generator=g) * 2 - 1).to(device)}
    inputs = {"z": torch.randn(n, run.latent_dim, generator=g).to(device)}
    if run.conditional:
        inputs["y"] = torch.randint(run.data["num_classes"], (n,), generator=g).to(device)
    return inputs


def write(G: nn.Module, inputs: dict[str, Tensor], output: str, out: Path, fmt: str) -> None:
    import torch

    batch = torch.export.Dim("batch", min=1)
    dynamic = tuple({0: batch} for _ in inputs)  # positional, as G's own argument names differ (z, y / a / x)
    args = tuple(inputs.values())
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="# The axis name")  # z and y share one batch dimension
            if fmt == ".pt2":
                program = torch.export.export(G, args, dynamic_shapes=dynamic)
            else:
                program = torch.onnx.export(G, args, input_names=list(inputs), output_names=[output],
                                            dynamic_shapes=dynamic, dynamo=True, verbose=False)
    except Exception as e:  # the exporters fail in many ways on code they cannot trace
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        other = ".onnx" if fmt == ".pt2" else ".pt2"
        raise ExportError(f"{FORMATS[fmt]} cannot convert this {type(G).__name__} ({type(e).__name__}: {first}). "
                          f"Try out=FILE{other}; HYDRA_FULL_ERROR=1 shows the exporter's traceback.") from e
    try:
        if fmt == ".pt2":
            torch.export.save(program, out)
        else:
            program.save(out, external_data=False)  # one file: weights inside (the ONNX limit is 2 GB)
    except OSError as e:
        raise write_error(out, e) from e


def check(G: nn.Module, inputs: dict[str, Tensor], out: Path, fmt: str) -> tuple[Tensor, float]:
    """G's output on `inputs`, and the largest difference from it of the written file, run as a user would.
    Too large: the file is removed."""
    import torch

    from gan_cli.games.base import seeded

    device = next(iter(inputs.values())).device
    with torch.no_grad():
        with seeded(0, device):  # what G draws itself (StyleGAN's noise inputs): the same draws for both
            expected = G(*inputs.values()).float().cpu()
        if fmt == ".pt2":
            with seeded(0, device):
                got = torch.export.load(out).module()(*inputs.values()).float().cpu()
        else:
            import onnxruntime

            session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            got = torch.from_numpy(session.run(None, {k: x.cpu().numpy() for k, x in inputs.items()})[0])
    diff = (got - expected).abs().max().item() if got.shape == expected.shape else float("inf")
    limit = TOLERANCE * max(1.0, expected.abs().max().item())
    if not diff <= limit:
        out.unlink(missing_ok=True)
        raise ExportError(f"out={out}: the exported file does not reproduce the generator (outputs {tuple(got.shape)} "
                          f"vs {tuple(expected.shape)}, max abs difference {diff:.1e}, more than {limit:.0e}); the "
                          f"file was removed. Try the other format (.pt2 or .onnx).")
    return expected, diff


def shape_text(x: Tensor) -> str:
    """(N, 16) for a batch: N is free."""
    return "(" + ", ".join(["N", *map(str, x.shape[1:])]) + ("," if x.dim() == 1 else "") + ")"


def output_name(run: Restored) -> str:
    return "points" if run.data["kind"] == "points" else "images"


def meaning(key: str, run: Restored) -> str:
    return {"z": "noise, standard normal",
            "y": f"class labels 0 to {run.data['num_classes'] - 1}",
            "x": "images in [-1, 1]",
            "images": "in [-1, 1] (tanh)",
            "points": "2D points, unbounded (no tanh): the data's own scale"}[key]


def usage(out: Path, fmt: str, names: list[str], output: str) -> str:
    if fmt == ".pt2":
        return f"{output} = torch.export.load({str(out)!r}).module()({', '.join(names)})  # torch tensors"
    feed = ", ".join(f"{k!r}: {k}" for k in names)
    return (f"{output} = onnxruntime.InferenceSession({str(out)!r}).run(None, {{{feed}}})[0]  "
            f"# numpy arrays, {' / '.join('int64' if k == 'y' else 'float32' for k in names)}")


if __name__ == "__main__":
    main()
