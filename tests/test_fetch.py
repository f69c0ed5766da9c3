"""Downloads on request only: gan_cli.fetch against a real HTTP server on 127.0.0.1 (never the internet).

A download lands whole and checked or not at all: bad hash, HTTP error, refused connection, a server that
hangs up or stalls, Ctrl-C, each leave nothing behind and fail as one paragraph naming the URL and the
destination. `gan fetch fid-inception` and `load_fid_inception(fetch=True)` use the same code.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gan_cli import fetch as F
from gan_cli.errors import DownloadError, GanCliError

REPO = Path(__file__).resolve().parent.parent
PAYLOAD = os.urandom(200_000) + b"end"
SHA = hashlib.sha256(PAYLOAD).hexdigest()
FID = F.ASSETS["fid-inception"]


class Handler(BaseHTTPRequestHandler):
    """/file: PAYLOAD; /short: Content-Length larger than what is sent; /stall: headers, then nothing."""

    hits: list[str] = []
    release = threading.Event()

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.hits.append(self.path)
        if self.path not in ("/file", "/short", "/stall"):
            self.send_error(404)
            return
        self.send_response(200)
        extra = 1000 if self.path == "/short" else 0
        self.send_header("Content-Length", str(len(PAYLOAD) + extra))
        self.end_headers()
        if self.path == "/stall":
            self.release.wait(10)
            return
        self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2] if self.path == "/short" else PAYLOAD)

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """A proxy set in the environment must not take the requests to 127.0.0.1 (subprocesses inherit this)."""
    for key in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(key, "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    Handler.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed on return: connecting is refused


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def one_paragraph(e: BaseException, *parts: str) -> str:
    msg = str(e)
    assert isinstance(e, GanCliError) and "\n" not in msg
    for part in parts:
        assert part in msg, (part, msg)
    return msg


# ---------------------------------------------------------------------------- download()


def test_good_hash_lands_whole_and_atomically(server, tmp_path):
    dest = tmp_path / "new" / "weights.pth"  # the folder is created
    assert F.download(f"{server}/file", dest, SHA[:8]) == SHA
    assert dest.read_bytes() == PAYLOAD and leftovers(dest.parent) == ["weights.pth"]
    assert F.download(f"{server}/file", dest, SHA.upper()) == SHA  # a full hash, any case; replaces the file
    assert F.download(f"{server}/file", tmp_path / "unchecked", None) == SHA


def test_bad_hash_leaves_nothing_and_keeps_an_old_file(server, tmp_path):
    dest = tmp_path / "weights.pth"
    dest.write_bytes(b"old")
    with pytest.raises(DownloadError) as info:
        F.download(f"{server}/file", dest, "6726825d")
    one_paragraph(info.value, SHA, "6726825d", f"{server}/file", str(dest), "by hand")
    assert leftovers(tmp_path) == ["weights.pth"] and dest.read_bytes() == b"old"


def test_connection_closed_half_way(server, tmp_path):
    with pytest.raises(DownloadError) as info:
        F.download(f"{server}/short", tmp_path / "f", SHA[:8])
    one_paragraph(info.value, f"closed after {len(PAYLOAD) // 2:,} of {len(PAYLOAD) + 1000:,} bytes", f"{server}/short")
    assert leftovers(tmp_path) == []


def test_connection_refused(closed_port, tmp_path):
    url = f"http://127.0.0.1:{closed_port}/file"
    with pytest.raises(DownloadError) as info:
        F.download(url, tmp_path / "f", SHA[:8])
    one_paragraph(info.value, "ConnectionRefusedError", url, str(tmp_path / "f"))
    assert leftovers(tmp_path) == []


def test_http_error_and_stalled_server(server, tmp_path):
    with pytest.raises(DownloadError) as info:
        F.download(f"{server}/nope", tmp_path / "f", SHA[:8])
    one_paragraph(info.value, "HTTP 404", f"{server}/nope")
    with pytest.raises(DownloadError) as info:
        F.download(f"{server}/stall", tmp_path / "f", SHA[:8], timeout=0.3)
    one_paragraph(info.value, "timed out", f"{server}/stall")
    assert leftovers(tmp_path) == []


def test_ctrl_c_mid_download_leaves_nothing(tmp_path, monkeypatch):
    class Response:
        length = 10

        def read(self, n):
            if self.sent:
                raise KeyboardInterrupt
            self.sent = True
            return b"12345"

        sent = False
        __enter__ = lambda self: self  # noqa: E731
        __exit__ = lambda self, *exc: None  # noqa: E731

    monkeypatch.setattr(F.urllib.request, "urlopen", lambda *a, **k: Response())
    with pytest.raises(DownloadError) as info:
        F.download("http://127.0.0.1:9/f", tmp_path / "f", None)
    one_paragraph(info.value, "Ctrl-C after 5 bytes")
    assert leftovers(tmp_path) == []


def test_unwritable_destination(server, tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(DownloadError) as info:
        F.download(f"{server}/file", tmp_path / "a_file" / "f", None)
    one_paragraph(info.value, "Cannot download", str(tmp_path / "a_file"))


# ---------------------------------------------------------------------------- where the weights go


def test_hub_dir_agrees_with_torch(tmp_path, monkeypatch):
    import torch.hub

    from gan_cli.metrics.extractors import inception

    assert (FID.filename, FID.sha256_prefix) == (inception.FID_WEIGHTS_NAME, inception.FID_WEIGHTS_HASH_PREFIX)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for env in ({}, {"XDG_CACHE_HOME": str(tmp_path / "xdg")}, {"TORCH_HOME": "~/th", "XDG_CACHE_HOME": "/x"}):
        for key in ("TORCH_HOME", "XDG_CACHE_HOME"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert F.torch_hub_dir() == Path(torch.hub.get_dir()), env
        assert F.default_folder() == inception.default_weights_dir()


# ---------------------------------------------------------------------------- gan fetch


def gan_fetch(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "COLUMNS": "2000", **(env or {})}  # no wrapping: the panel's text stays greppable
    return subprocess.run([sys.executable, "-m", "gan_cli.fetch", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env=full)


@pytest.mark.parametrize("via", ["--url", "env"])
def test_cli_refuses_a_file_without_the_fid_hash(server, tmp_path, via):
    url = f"{server}/file"
    args = ["--url", url] if via == "--url" else []
    out = gan_fetch("fid-inception", "--dest", str(tmp_path), *args, env={FID.url_env: url})
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr and "DownloadError" in out.stderr
    assert url in out.stderr and SHA in out.stderr and "6726825d" in out.stderr
    assert str(tmp_path / FID.filename) in out.stderr
    assert leftovers(tmp_path) == []


def test_cli_list_and_usage(tmp_path):
    out = gan_fetch("--list", env={"TORCH_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert "fid-inception" in out.stdout and "not downloaded" in out.stdout and FID.url in out.stdout
    assert str(tmp_path / "hub" / "checkpoints" / FID.filename) in out.stdout
    out = gan_fetch()
    assert out.returncode == 2 and "fid-inception" in out.stderr and "Traceback" not in out.stderr


def test_cli_downloads_once_then_skips(server, tmp_path, monkeypatch, capsys):
    # The real weights' hash cannot be served: here the asset expects the test file's hash instead.
    monkeypatch.setitem(F.ASSETS, "fid-inception", dataclasses.replace(FID, sha256_prefix=SHA[:8]))
    args = ["fid-inception", "--url", f"{server}/file", "--dest", str(tmp_path)]
    before = len(Handler.hits)
    F.main(args)
    assert (tmp_path / FID.filename).read_bytes() == PAYLOAD and leftovers(tmp_path) == [FID.filename]
    F.main(args)
    assert len(Handler.hits) == before + 1 and "already there" in capsys.readouterr().out
    (tmp_path / FID.filename).write_bytes(b"corrupt")
    F.main(args)
    assert "downloading it again" in capsys.readouterr().out
    assert (tmp_path / FID.filename).read_bytes() == PAYLOAD and len(Handler.hits) == before + 2


# ---------------------------------------------------------------------------- load_fid_inception(fetch=...)


def test_inception_downloads_only_when_asked(server, tmp_path, monkeypatch):
    from gan_cli.metrics.extractors.base import ExtractorError
    from gan_cli.metrics.extractors.inception import load_fid_inception

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv(FID.url_env, f"{server}/file")
    folder = tmp_path / "hub" / "checkpoints"
    before = len(Handler.hits)
    with pytest.raises(ExtractorError) as info:
        load_fid_inception()  # offline by default
    msg = one_paragraph(info.value, "gan fetch fid-inception", "fetch_weights=true", str(folder))
    assert msg.index("gan fetch fid-inception") < msg.index("By hand") and len(Handler.hits) == before

    with pytest.raises(DownloadError) as info:  # served, but not pytorch-fid's file
        load_fid_inception(fetch=True)
    one_paragraph(info.value, f"{server}/file", str(folder / FID.filename), "6726825d")
    assert len(Handler.hits) == before + 1 and leftovers(folder) == []
    with pytest.raises(DownloadError, match=str(tmp_path / "mine.pth")):  # an explicit path is where it goes
        load_fid_inception(tmp_path / "mine.pth", fetch=True)
