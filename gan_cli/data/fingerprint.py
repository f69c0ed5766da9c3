"""Content fingerprints (GanData.fingerprint): metric caches are keyed by them, never by a path.

Files are fingerprinted by their sorted names relative to the dataset's folder, sizes and
modification times in ns (reading every byte of a large folder would take minutes), plus the
options that change the tensors made from them. Rewriting or touching a file changes it.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable


def fingerprint(*parts: Any) -> str:
    """sha256 (hex) of JSON-able parts: a dataset's name, options, file list."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def files_fingerprint(files: Iterable[str | os.PathLike], root: str | os.PathLike, **options: Any) -> str:
    """Of `files` under `root` (relative name, size, mtime ns; sorted) and the `options` that shape the tensors."""
    entries = []
    for file in files:
        stat = os.stat(file)
        entries.append((Path(file).relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns))
    return fingerprint(sorted(entries), options)
