"""`gan prepare`: images -> a prepared dataset that `dataset=prepared` trains on (see gan_cli/prep/writer.py)."""
from __future__ import annotations

import os
import signal
import sys
import tarfile
import zipfile
from functools import partial
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from gan_cli.config import config_dir
from gan_cli.errors import ConfigError, DataError
from gan_cli.hydra_app import report_errors
from gan_cli.logging.console import console
from gan_cli.prep.images import FILTERS, decode
from gan_cli.prep.image_sources import IMAGE_EXTENSIONS, file_labels, folder_labels, list_archive, list_folder
from gan_cli.prep.pool import chunk_results
from gan_cli.prep.progress import reasons

TORCHVISION = ("mnist", "fashion_mnist", "cifar10")
KINDS = ("image", "paired", "unpaired")
POWER_OF_TWO_MODELS = "dcgan, cgan, resnet, sagan, biggan, progan, stylegan and pix2pix"
CHUNK = 64


def _check(cfg: DictConfig) -> None:
    if cfg.filter not in FILTERS:
        raise ConfigError(f"filter={cfg.filter!r} is not a resize filter. Valid: {', '.join(FILTERS)}.")
    if cfg.crop not in ("center", "wide", "pad"):
        raise ConfigError(f"crop={cfg.crop!r} is not valid. Valid: center, wide, pad.")
    if cfg.channels not in (1, 3):
        raise ConfigError(f"channels={cfg.channels!r} is not valid. Valid: 1 (grey) or 3 (RGB).")
    if not isinstance(cfg.resolution, int) or cfg.resolution < 1:
        raise ConfigError(f"resolution={cfg.resolution!r} must be a positive integer (e.g. 64).")
    _check_kind(cfg)
    if cfg.resolution & (cfg.resolution - 1):
        console.print(f"[yellow]warning:[/] resolution={cfg.resolution} is not a power of two; "
                      f"{POWER_OF_TWO_MODELS} need one (mlp does not; cyclegan needs a multiple of 4).")


def _check_kind(cfg: DictConfig) -> None:
    if cfg.kind not in KINDS:
        raise ConfigError(f"kind={cfg.kind!r} is not valid. Valid: image (single images), paired (pix2pix: A/ and B/ "
                          f"or side-by-side pairs) or unpaired (CycleGAN: trainA/ and trainB/).")
    if cfg.kind == "image":
        return
    if cfg.channels_b not in (None, 1, 3):
        raise ConfigError(f"channels_b={cfg.channels_b!r} is not valid. Valid: 1 (grey), 3 (RGB) or null (the same "
                          f"as channels).")
    if cfg.max_images is not None:
        raise ConfigError(f"max_images={cfg.max_images} applies to kind=image only; kind={cfg.kind} prepares every "
                          f"image of the folder. Set max_images=null.")


def _load_chunk(names: list[str], source: str, archive: str | None, settings: dict) -> list:
    """Worker: decode a chunk of images -> list of uint8 arrays or skip reasons."""
    out = []
    zf = zipfile.ZipFile(source) if archive == "zip" else None
    tf = tarfile.open(source) if archive == "tar" else None
    try:
        for name in names:
            try:
                if zf is not None:
                    data = zf.read(name)
                elif tf is not None:
                    data = tf.extractfile(name).read()
                else:
                    data = Path(source, name).read_bytes()
            except OSError:
                out.append("unreadable file")
                continue
            except Exception:  # noqa: BLE001 - a broken archive member
                out.append("unreadable file")
                continue
            out.append(decode(data, **settings))
    finally:
        for f in (zf, tf):
            if f is not None:
                f.close()
    return out


def _source_files(cfg: DictConfig) -> tuple[Path, list[str], str | None, list[str]]:
    source = Path(os.path.expanduser(str(cfg.source)))
    if source.is_dir():
        names, loops = list_folder(source)
        return source, names, None, loops
    if source.is_file():
        if zipfile.is_zipfile(source):
            return source, list_archive(source), "zip", []
        if tarfile.is_tarfile(source):
            return source, list_archive(source), "tar", []
        raise DataError(f"source={source} is a file but neither a zip nor a tar archive. Give an image folder, "
                        f"a .zip or .tar of images, or one of {', '.join(TORCHVISION)}.")
    raise DataError(f"source={source}: no such folder or file. Give an image folder, a .zip or .tar of images, "
                    f"or one of {', '.join(TORCHVISION)} (with root=FOLDER holding its files).")


def prepare(cfg: DictConfig) -> dict:
    """Write the prepared dataset; returns its manifest."""
    _check(cfg)
    out = Path(os.path.expanduser(str(cfg.out)))
    if out.exists() and not cfg.overwrite:
        raise ConfigError(f"out={out} exists. Choose another out= or add overwrite=true to replace it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    workers = cfg.workers or os.cpu_count() or 1
    if cfg.kind != "image":
        from gan_cli.prep.translation import prepare_translation
        manifest = prepare_translation(cfg, out, workers)
    elif str(cfg.source) in TORCHVISION:
        from gan_cli.prep.torchvision_source import prepare_torchvision
        return prepare_torchvision(cfg, out)
    else:
        manifest = _prepare_images(cfg, out, workers)
    _report(manifest, out)
    return manifest


def _prepare_images(cfg: DictConfig, out: Path, workers: int) -> dict:
    from gan_cli.prep.progress import progress_bar
    from gan_cli.prep.writer import PreparedWriter

    source, names, archive, loops = _source_files(cfg)
    labels_opt = str(cfg.labels)
    if labels_opt == "none":
        labels, classes = [-1] * len(names), []
    elif labels_opt == "folders":
        labels, classes = folder_labels(names)
    else:
        labels, classes = file_labels(Path(os.path.expanduser(labels_opt)), names)
    if not names:
        raise DataError(f"source={source} holds no images (searched recursively for "
                        f"{', '.join(IMAGE_EXTENSIONS)}).")
    settings = dict(resolution=cfg.resolution, channels=cfg.channels, crop=cfg.crop, filter=cfg.filter,
                    background=tuple(int(c) for c in cfg.background), min_size=int(cfg.min_size))
    chunks = [names[i:i + CHUNK] for i in range(0, len(names), CHUNK)]
    work = partial(_load_chunk, source=str(source), archive=archive, settings=settings)
    max_images = cfg.max_images if cfg.max_images is not None else len(names)
    skipped: list[dict] = [{"file": p, "reason": "symlink loop"} for p in loops]
    kept_labels: set[int] = set()
    writer = None
    try:
        writer = PreparedWriter(out)
        # workers ignore Ctrl-C: the main process stops them and removes the temp folder
        with chunk_results(work, chunks, workers) as results, \
                progress_bar(len(names) if cfg.max_images is None else min(max_images, len(names))) as advance:
            i = 0
            for chunk, decoded in zip(chunks, results):
                for name, item in zip(chunk, decoded):
                    label, i = labels[i], i + 1
                    if isinstance(item, str):
                        skipped.append({"file": name, "reason": item})
                        continue
                    if len(writer) < max_images:
                        writer.add(item, label)
                        kept_labels.add(label)
                        advance(1)
                if len(writer) >= max_images:
                    break
        if not len(writer):
            raise DataError(f"source={source}: none of its {len(names)} image file(s) could be read "
                            f"({reasons(skipped)}). Check the files, or lower min_size={cfg.min_size}.")
        manifest = {"source": str(source), "kind": "image",
                    "options": OmegaConf.to_container(cfg, resolve=True),
                    "num_classes": len(classes), "class_names": classes,
                    "skipped_count": len(skipped), "skipped": skipped}
        return writer.finish(manifest, cfg.overwrite)
    except BaseException:
        if writer is not None:
            writer.abandon()
        raise


def _summary(manifest: dict) -> str:
    if manifest["kind"] == "image":
        return f"{manifest['count']} images {tuple(manifest['shape'])}, {manifest['num_classes']} classes"
    parts = {name: f"{p['count']} {tuple(p['shape'])}" for name, p in manifest["parts"].items()}
    what = "pairs" if manifest["kind"] == "paired" else "images"
    return (f"{manifest['kind']}: train A {parts['train_a']}, B {parts['train_b']} {what}; "
            f"held out A {parts['test_a']}, B {parts['test_b']}")


def _report(manifest: dict, out: Path) -> None:
    console.print(f"wrote [bold]{out}[/]: {_summary(manifest)}, fingerprint {manifest['fingerprint'][:12]}")
    if manifest["skipped"]:
        console.print(f"[yellow]warning:[/] skipped {manifest['skipped_count']} file(s): {reasons(manifest['skipped'])} "
                      f"(listed in {out / 'manifest.json'})")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="prepare")
@report_errors
def main(cfg: DictConfig) -> dict:
    try:
        return prepare(cfg)
    except KeyboardInterrupt:
        console.print(f"\n[yellow]Ctrl-C: stopped preparing; its temp folder was removed and nothing was written "
                      f"to out={cfg.out}.[/]", highlight=False)
        sys.exit(128 + signal.SIGINT)


if __name__ == "__main__":
    main()
