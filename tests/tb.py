"""Read TensorBoard event files back with TensorBoard's own reader."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def read_events(tb_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


class TensorBoard:
    """A real `tensorboard` server on `logdir` (a free local port), read through its HTTP API as the
    browser reads it. `load_fast="true"`: the Rust data server (the default where it is installed);
    "false": the Python reader. Use as a context manager: the server (and its data server) stop on exit."""

    def __init__(self, logdir: Path, load_fast: str = "true"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        exe = Path(sys.executable).parent / "tensorboard"
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [str(exe), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(self.port),
             f"--load_fast={load_fast}", "--reload_interval", "1"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def __enter__(self) -> "TensorBoard":
        return self

    def __exit__(self, *exc) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the data server goes too
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def get(self, path: str, **query: str) -> bytes:
        url = f"http://127.0.0.1:{self.port}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.read()

    def get_json(self, path: str, **query: str):
        return json.loads(self.get(path, **query))

    def post_json(self, path: str, body: dict):
        """A POST as the frontend sends it (JSON body, XSRF header)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def wait_for(self, ready, timeout: float = 60):
        """Poll until `ready(self)` returns something truthy (the server answers and has loaded the data)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tensorboard exited with {self.proc.returncode}:\n{self.output()}")
            try:
                result = ready(self)
                if result:
                    return result
            except (OSError, ValueError):  # not listening yet, or an incomplete answer
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"tensorboard did not load the runs in {timeout} s:\n{self.output()}")
            time.sleep(0.2)
