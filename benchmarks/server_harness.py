"""What the server benchmarks share: a local server in a child process, its RSS, and uploads.

The server is ``python app.py`` (waitress) bound to 127.0.0.1 on a free port; nothing listens beyond
this machine.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO.parent / "shared" / "clips"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the hostile-input corpus builder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalServer:
    """``python app.py`` on 127.0.0.1:<free port>, with RSS sampled every ``interval`` seconds."""

    def __init__(self, env: dict | None = None, interval: float = 0.1, threads: int = 8, repo: Path = REPO):
        self.port = free_port()
        if (repo / "app.py").read_text().find("def serve(") >= 0:
            command = [str(repo / "app.py"), "--host", "127.0.0.1", "--port", str(self.port), "--threads", str(threads)]
        else:  # an older checkout (before/after comparisons): its app under waitress, as served here
            command = ["-c", f"import waitress, app; waitress.serve(app.app, host='127.0.0.1', port={self.port}, "
                             f"threads={threads})"]
        self.process = subprocess.Popen(
            [sys.executable, *command],
            cwd=repo, env={**os.environ, "PYTHONPATH": str(repo), **(env or {})},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.samples: list[tuple[float, int]] = []
        self.started = time.perf_counter()
        self._stop = threading.Event()
        deadline = time.time() + 180
        while True:
            try:
                status, _ = self.request("GET", "/api/health")
                if status == 200:
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.3)
        self._sampler = threading.Thread(target=self._sample, args=(interval,), daemon=True)
        self._sampler.start()

    def rss(self) -> int:
        from syncnet_fcn.memory import rss_bytes

        return rss_bytes(self.process.pid) or 0

    def _sample(self, interval: float) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - self.started, self.rss()))
            time.sleep(interval)

    def peak_since(self, t0: float) -> int:
        return max((rss for t, rss in self.samples if t >= t0 - self.started), default=self.rss())

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 600) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def upload(self, path: Path, endpoint: str = "/api/detect", fields: dict | None = None) -> tuple[int, bytes]:
        body, content_type = multipart({**(fields or {})}, "video", path.name, path.read_bytes())
        return self.request("POST", endpoint, body, {"Content-Type": content_type})

    def close(self) -> None:
        self._stop.set()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def multipart(fields: dict, file_field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
                 f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def error_code(body: bytes) -> str | None:
    try:
        return json.loads(body).get("error", {}).get("code")
    except (ValueError, AttributeError):
        return None


def megabytes(n: float) -> str:
    return f"{n / 2**20:,.0f} MB"
