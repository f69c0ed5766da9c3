"""`gan train` with CPU autocast following CUDA's op lists (gan_cli.engine.cuda_autocast); used by gpu_check.py.

    python benchmarks/train_cuda_autocast.py OVERRIDES...     # as `gan train OVERRIDES...`

On the CPU a bf16 run then casts as it would on a GPU (upsampling, norms, losses in fp32), so the
CPU dry run of the GPU check fails where a GPU run would.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's gan_cli

from gan_cli.engine.cuda_autocast import cuda_autocast_on_cpu  # noqa: E402
from gan_cli.train import main  # noqa: E402

if __name__ == "__main__":
    with cuda_autocast_on_cpu():
        main()
