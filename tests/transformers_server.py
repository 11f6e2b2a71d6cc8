"""A real OpenAI-compatible server for tests: `transformers serve` on a local model directory (CPU).

    with TransformersServer(tiny_model_dir) as server:   # waits until /health answers (20-30 s here)
        server.base_url, server.model                     # http://127.0.0.1:PORT/v1, the name it serves
        server.kill()                                     # SIGKILL, as a crash would
        server.start()                                    # again, on the same port

Needs the `serve` extra (`pip install "transformers[serving]"`); `available()` says why not when it is missing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 180.0


def available() -> str | None:
    """None when `transformers serve` can run here, else the reason it cannot."""
    if shutil.which("transformers") is None:
        return "no `transformers` command on PATH"
    for module in ("fastapi", "uvicorn"):
        if importlib.util.find_spec(module) is None:
            return f"`transformers serve` needs {module}: pip install 'transformers[serving]'"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TransformersServer:
    def __init__(self, model_dir: str | Path, port: int | None = None, log: Path | None = None):
        self.model = str(model_dir)  # the server pins this name: a request for another model is a 400
        self.port = port or free_port()
        self.log = log
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> TransformersServer:
        cmd = ["transformers", "serve", self.model, "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--device", "cpu"]
        output = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
        self.process = subprocess.Popen(
            cmd, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.process.returncode} while starting")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"transformers serve did not answer /health within {timeout_s:.0f} s")

    def kill(self) -> None:
        """SIGKILL the server and everything it started, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def __enter__(self) -> TransformersServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
