"""Reference statistics files in pytorch-fid's `.npz` format: `mu` (D,) and `sigma` (D, D), float64.

`save_stats=FILE.npz` writes them (atomically, with the protocol that computed them as an extra JSON string
`gan_cli_protocol`, which pytorch-fid and clean-fid ignore); `real_stats=FILE.npz` reads any such file:
pytorch-fid's, clean-fid's, or one written here.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gan_cli.errors import ConfigError


def save_stats(path: str | Path, mu: Tensor, sigma: Tensor, protocol: dict[str, Any]) -> None:
    path = Path(path).expanduser()
    if path.suffix != ".npz":
        raise ConfigError(f"save_stats={path} must end in .npz (pytorch-fid's statistics format: mu, sigma).")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:  # a file object: np.savez adds no second suffix
            np.savez(f, mu=mu.double().cpu().numpy(), sigma=sigma.double().cpu().numpy(),
                     gan_cli_protocol=np.array(json.dumps(protocol, default=str)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise ConfigError(f"save_stats={path}: could not write the file ({e.strerror or e}). "
                          f"Choose a path in a folder you can write to.") from None
    finally:
        tmp.unlink(missing_ok=True)


def load_stats(path: str | Path, feature_dim: int, extractor: str) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """(mu, sigma, facts) of a statistics file, checked against the extractor's feature size."""
    path = Path(path).expanduser()
    valid = "a .npz file with arrays mu (D,) and sigma (D, D), as pytorch-fid, clean-fid and save_stats= write"
    if not path.is_file():
        raise ConfigError(f"real_stats={path}: no such file; it must be {valid}.")
    try:
        with np.load(path, allow_pickle=False) as f:
            mu, sigma = np.asarray(f["mu"], dtype=np.float64), np.asarray(f["sigma"], dtype=np.float64)
            protocol = json.loads(str(f["gan_cli_protocol"])) if "gan_cli_protocol" in f.files else None
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"real_stats={path} cannot be read as statistics ({type(e).__name__}: {e}); it must be "
                          f"{valid}.") from None
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)) or len(mu) != feature_dim:
        raise ConfigError(f"real_stats={path} holds mu {mu.shape} and sigma {sigma.shape}, but the {extractor} "
                          f"features have {feature_dim} dimensions: the file was computed with another feature "
                          f"extractor. Use statistics of the same extractor (extractor=...), or drop real_stats.")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    facts = {"fingerprint": f"stats-file:{digest[:32]}", "sha256": digest, "cache": f"real_stats={path}",
             "file_protocol": protocol}
    return torch.from_numpy(mu), torch.from_numpy(sigma), facts
