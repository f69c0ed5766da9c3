"""`gan fetch`: download, when asked to, the files gan_cli cannot ship (the FID Inception weights).

Nothing else in gan_cli goes online unless a flag asks for it (`fetch_weights=true` of `gan eval`,
`dataset.download=true`). :func:`download` streams a URL to a hidden partial file next to its
destination, checks the sha256 and only then moves the file into place, so a failed or interrupted
download leaves nothing behind. This module imports no torch: `gan fetch --list` answers at once.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from gan_cli.interrupt import release_ctrl_c
from gan_cli.errors import DownloadError, GanCliError
from gan_cli.logging.console import console, print_error

READ_TIMEOUT = 30.0  # seconds to connect, and seconds without a byte before giving up
CHUNK = 1 << 16


@dataclass(frozen=True)
class Asset:
    """A file `gan fetch NAME` downloads, checked against the sha256 prefix its name carries."""

    filename: str
    sha256_prefix: str
    url: str
    url_env: str  # an environment variable that replaces `url` (a mirror, or a local server in tests)
    about: str

    def source(self) -> str:
        return os.environ.get(self.url_env) or self.url


ASSETS = {
    "fid-inception": Asset(
        filename="pt_inception-2015-12-05-6726825d.pth",
        sha256_prefix="6726825d",
        url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
            "pt_inception-2015-12-05-6726825d.pth",
        url_env="GAN_CLI_FID_WEIGHTS_URL",
        about="pytorch-fid's FID Inception-v3 weights (91 MB), for FID / KID / IS of `gan eval` on images",
    ),
}


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()`` without importing torch: ``$TORCH_HOME/hub``, where TORCH_HOME defaults to
    ``$XDG_CACHE_HOME/torch`` and XDG_CACHE_HOME to ``~/.cache``."""
    home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(os.path.expanduser(home)) / "hub"


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex of a file's bytes, read in chunks (here, not beside the extractors: no torch)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------- download


def _reason(e: BaseException, timeout: float) -> str:
    """What went wrong, in words; the socket error under a URLError."""
    if isinstance(e, urllib.error.HTTPError):
        return f"the server answered HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError) and isinstance(e.reason, BaseException):
        e = e.reason
    if isinstance(e, TimeoutError):
        return f"the server sent nothing for {timeout:g} s (timed out)"
    return f"{type(e).__name__}: {e}"


def _failed(what: str, url: str, dest: Path, reason: str, sha256_prefix: str | None) -> DownloadError:
    check = f"; its sha256 must start with {sha256_prefix}" if sha256_prefix else ""
    return DownloadError(
        f"Downloading {what} from {url} failed: {reason}. Nothing was written to {dest} (the partial file "
        f"was removed). Try again, or fetch the file by hand where that URL can be reached (e.g. "
        f"`curl -L -o {dest.name} {url}`) and copy it to {dest}{check}."
    )


def download(url: str, dest: Path, sha256_prefix: str | None = None, *, what: str | None = None,
             timeout: float = READ_TIMEOUT) -> str:
    """Download `url` to the file `dest` and return its sha256 (hex).

    The bytes go to ``.NAME.part-PID`` in dest's folder, with a progress bar; the file moves into place
    (``os.replace``, atomic) only when all Content-Length bytes came and its sha256 starts with
    `sha256_prefix` (torch hub's file naming; a full hash works too; None: no check). Otherwise the
    partial file is removed and a :class:`DownloadError` names the reason, the URL and where the file
    would go. `timeout`: seconds to connect and seconds a read may wait.
    """
    dest = Path(dest).expanduser()
    what = what or dest.name
    part = dest.parent / f".{dest.name}.part-{os.getpid()}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        out = open(part, "wb")
    except OSError as e:
        raise DownloadError(f"Cannot download {what} into {dest.parent}: {type(e).__name__}: {e}. "
                            f"Choose a writable folder, or fix this one's permissions.") from None
    console.print(f"downloading {what} from {url}", markup=False, highlight=False, soft_wrap=True)
    request = urllib.request.Request(url, headers={"User-Agent": "gan_cli"})
    digest, received = hashlib.sha256(), 0
    try:
        with out, urllib.request.urlopen(request, timeout=timeout) as response:
            total = response.length  # Content-Length; None when the server sends none
            progress = Progress(TextColumn("{task.description}", style="bold blue", markup=False), BarColumn(),
                                DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(), console=console,
                                disable=not console.is_terminal)
            with progress:
                task = progress.add_task(what, total=total)
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    progress.advance(task, len(chunk))
            if total is not None and received < total:  # http.client returns b"" when the peer hangs up
                raise _failed(what, url, dest, f"the connection closed after {received:,} of {total:,} bytes",
                              sha256_prefix)
            out.flush()
            os.fsync(out.fileno())
        sha256 = digest.hexdigest()
        if sha256_prefix and not sha256.startswith(sha256_prefix.lower()):
            raise _failed(what, url, dest, f"the file's sha256 is {sha256}, not one starting with {sha256_prefix} "
                          f"(a corrupt or different file, or a proxy's error page)", sha256_prefix)
        os.replace(part, dest)
    except DownloadError:
        raise
    except KeyboardInterrupt:
        raise _failed(what, url, dest, f"stopped by Ctrl-C after {received:,} bytes", sha256_prefix) from None
    except (OSError, http.client.HTTPException, ValueError) as e:  # URLError and socket errors are OSErrors
        raise _failed(what, url, dest, _reason(e, timeout), sha256_prefix) from None
    finally:
        part.unlink(missing_ok=True)  # gone already when the download succeeded
    console.print(f"saved {dest} ({received:,} bytes, sha256 {sha256})", markup=False, highlight=False, soft_wrap=True)
    return sha256


def fetch(name: str, file: Path, url: str | None = None) -> Path:
    """Asset `name` at `file`: kept when it is there with a good hash, else downloaded (over a bad copy)."""
    asset = ASSETS[name]
    file = Path(file).expanduser()
    if file.is_file():
        sha256 = file_sha256(file)
        if sha256.startswith(asset.sha256_prefix):
            console.print(f"{file} is already there (sha256 {sha256[:12]}...): nothing to download.",
                          markup=False, highlight=False, soft_wrap=True)
            return file
        console.print(f"{file} has sha256 {sha256[:12]}..., not {asset.sha256_prefix}...: downloading it again.",
                      markup=False, highlight=False, soft_wrap=True)
    download(url or asset.source(), file, asset.sha256_prefix, what=asset.filename)
    return file


# ---------------------------------------------------------------------------- gan fetch


def default_folder() -> Path:
    return torch_hub_dir() / "checkpoints"


def _status(file: Path, asset: Asset) -> str:
    if not file.is_file():
        return "not downloaded"
    return "present, hash ok" if file_sha256(file).startswith(asset.sha256_prefix) else "present, WRONG HASH"


def main(argv: list[str] | None = None) -> None:
    try:
        release_ctrl_c()  # held by `gan` while it started; a Ctrl-C from then on stops the download
    except KeyboardInterrupt:
        sys.exit(130)
    parser = argparse.ArgumentParser(
        prog="gan fetch",
        description="Download a file gan_cli needs but cannot ship, checked against its sha256. "
                    "Nothing is downloaded unless you run this (or pass fetch_weights=true to gan eval).",
        epilog="examples:\n  gan fetch fid-inception                      into $TORCH_HOME/hub/checkpoints\n"
               "  gan fetch fid-inception --dest /weights      then gan eval ... inception_weights=/weights\n"
               "  gan fetch --list",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", choices=sorted(ASSETS), help="what to download")
    parser.add_argument("--list", action="store_true", help="list what can be fetched, and where it is")
    parser.add_argument("--dest", type=Path, metavar="FOLDER",
                        help="folder to put the file in (default: torch hub's, $TORCH_HOME/hub/checkpoints)")
    parser.add_argument("--url", help="download from this URL instead (default: $GAN_CLI_FID_WEIGHTS_URL, "
                                      "else the official release)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    folder = args.dest or default_folder()
    if args.list:
        for name, asset in ASSETS.items():
            file = folder / asset.filename
            console.print(f"{name}: {asset.about}\n  {file} ({_status(file, asset)})\n  from {asset.source()}",
                          markup=False, highlight=False, soft_wrap=True)
        return
    if args.name is None:
        parser.error(f"name what to fetch ({', '.join(ASSETS)}), or --list")
    try:
        fetch(args.name, folder / ASSETS[args.name].filename, url=args.url)
    except GanCliError as e:
        print_error(str(e), title=type(e).__name__)
        sys.exit(1)
    except KeyboardInterrupt:
        print("\ngan fetch: stopped by Ctrl-C; nothing was saved.", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
