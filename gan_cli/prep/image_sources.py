"""Where images come from: a folder (recursive), a zip or tar; each yields (name, label, bytes reader)."""
from __future__ import annotations

import csv
import json
import os
import tarfile
import zipfile
from pathlib import Path

from gan_cli.data.formats import IMAGE_EXTENSIONS
from gan_cli.errors import DataError


def _is_image_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


def list_folder(root: Path) -> tuple[list[str], list[str]]:
    """Relative image paths (sorted, following symlinks once: loops are skipped) and skipped loop paths."""
    names, loops, seen = [], [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            loops.append(os.path.relpath(dirpath, root))
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        for f in filenames:
            rel = os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")
            if _is_image_name(rel):
                names.append(rel)
    return sorted(names), loops


def list_archive(path: Path) -> list[str]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return sorted(n for n in z.namelist() if not n.endswith("/") and _is_image_name(n))
    with tarfile.open(path) as t:
        return sorted(m.name for m in t.getmembers() if m.isfile() and _is_image_name(m.name))


def folder_labels(names: list[str]) -> tuple[list[int], list[str]]:
    """Class from the first subfolder level; files at the top get no class (all -1 when none has one)."""
    classes = sorted({n.split("/", 1)[0] for n in names if "/" in n})
    if not classes:
        return [-1] * len(names), []
    index = {c: i for i, c in enumerate(classes)}
    return [index.get(n.split("/", 1)[0], -1) if "/" in n else -1 for n in names], classes


def file_labels(labels_file: Path, names: list[str]) -> tuple[list[int], list[str]]:
    """Labels from FILE.json ({"file": "class"} or stylegan2-ada's {"labels": [[file, class], ...]}) or FILE.csv (file,class)."""
    if not labels_file.is_file():
        raise DataError(f"labels={labels_file}: no such file. Give a .json or .csv mapping file -> class, "
                        f"labels=folders (class subfolders) or labels=none.")
    suffix = labels_file.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(labels_file.read_text())
            pairs = data["labels"] if isinstance(data, dict) and "labels" in data else (
                list(data.items()) if isinstance(data, dict) else data)
        elif suffix == ".csv":
            rows = list(csv.reader(labels_file.read_text().splitlines()))
            pairs = [r for r in rows if len(r) >= 2 and r[0].strip() not in ("file", "filename")]
        else:
            raise DataError(f"labels={labels_file}: unknown labels file format {suffix or '(none)'!r}. "
                            f"Use a .json ({{\"file\": \"class\"}}) or a .csv (file,class) file.")
        mapping = {str(f).strip().replace("\\", "/"): str(c).strip() for f, c in pairs}
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"labels={labels_file}: cannot be read as file -> class ({e}).") from e
    missing = sorted(set(mapping) - set(names))
    if missing:
        raise DataError(f"labels={labels_file} names {len(missing)} file(s) that are not in the source, "
                        f"e.g. {missing[:3]}. Paths are relative to the source folder.")
    classes = sorted(set(mapping.values()))
    index = {c: i for i, c in enumerate(classes)}
    return [index[mapping[n]] if n in mapping else -1 for n in names], classes
