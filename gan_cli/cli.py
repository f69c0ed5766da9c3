"""`gan`: one console script, one Hydra app per command."""
from __future__ import annotations

import sys

from gan_cli.interrupt import hold_ctrl_c_until_the_app  # first: it holds Ctrl-C while `gan` starts

COMMANDS = {
    "train": ("gan_cli.train", "train a GAN (Hydra overrides: model=dcgan loss=wgan_gp ...)"),
    "sample": ("gan_cli.sample", "samples from a trained generator: PNG grid or .npz (ckpt=RUN num=64)"),
    "eval": ("gan_cli.eval", "metrics of a trained generator, written to <run>/eval.json (ckpt=RUN)"),
    "export": ("gan_cli.export", "the generator as a file that runs without gan_cli: .pt2 or .onnx (ckpt=RUN out=FILE)"),
    "prepare": ("gan_cli.prepare", "images (folder, zip, tar, mnist/cifar10) -> a prepared dataset (source=DIR out=DIR resolution=64)"),
    "fetch": ("gan_cli.fetch", "download what evaluation can use, on request only (gan fetch fid-inception)"),
}

USAGE = """usage: gan COMMAND [--trust PREFIX] [HYDRA OVERRIDES AND FLAGS]

commands:
{commands}

`gan COMMAND --help` explains a command. train, sample, eval and export are Hydra apps:
`--cfg job` prints the composed config, `-m` sweeps. A config or checkpoint may
name only gan_cli's own builders and torch.optim; `--trust my_models` (or GAN_CLI_TRUST=my_models)
also allows your own code under that module prefix.

examples:
  gan train                                      quickstart: DCGAN on the embedded digits
  gan train model=dcgan loss=wgan_gp             any composition of the config groups
  gan train -m loss=bce,hinge optimizer.generator.lr=1e-4,2e-4    a sweep
  gan sample ckpt=outputs/runs/DATE/TIME num=64                   a PNG grid of samples
  gan eval ckpt=outputs/runs/DATE/TIME                            metrics, offline
  gan fetch fid-inception && gan eval ckpt=RUN extractor=inception real FID (downloads once)
  gan export ckpt=outputs/runs/DATE/TIME out=G.onnx               G for use without gan_cli
"""


def main(argv: list[str] | None = None) -> None:
    hold_ctrl_c_until_the_app()  # each command's main releases it (Hydra apps: in report_errors)
    from gan_cli.trust import take_trust_flags

    argv = take_trust_flags(sys.argv[1:] if argv is None else argv)  # before Hydra sees them; children inherit
    if not argv or argv[0] in ("-h", "--help", "help"):
        width = max(len(c) for c in COMMANDS)
        lines = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
        print(USAGE.format(commands=lines))
        sys.exit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"gan: unknown command {command!r}. Valid commands: {', '.join(COMMANDS)}. See `gan --help`.",
              file=sys.stderr)
        sys.exit(2)
    sys.argv = [f"gan {command}", *rest]
    try:
        __import__(COMMANDS[command][0], fromlist=["main"]).main()
    except KeyboardInterrupt:  # a Ctrl-C the app raised on starting (report_errors has its own message)
        stopped_while_starting(command)


def stopped_while_starting(command: str) -> None:
    print(f"\ngan {command}: stopped by Ctrl-C while starting; nothing was saved.", file=sys.stderr)
    sys.exit(130)


if __name__ == "__main__":
    main()
