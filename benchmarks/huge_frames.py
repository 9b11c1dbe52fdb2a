"""A small file declaring huge frames: time and peak memory to refuse it, alone and 8 at once.

Writes a 2 s video of 8192×8192 black frames with the sound of a real clip (about 200 KB, the
"decompression bomb" of the hardening issue), then measures
  1. the CLI (a fresh ``python -m syncnet_fcn detect`` process): wall time and peak RSS;
  2. the server (``python app.py`` on 127.0.0.1): one upload, then ``--parallel`` uploads at once —
     answers, time, and the server's peak RSS (sampled every 20 ms).

    python benchmarks/huge_frames.py [--parallel 8] [--frames 50] [--clip syncnet_example.avi]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from server_harness import CLIPS, REPO, LocalServer, error_code, megabytes


def bomb(folder: Path, clip: Path, frames: int) -> Path:
    from hostile_corpus import _blank, _source, write_media

    _, audio = _source(clip, frames / 25)
    return write_media(folder / "bomb.mkv", _blank(8192, 8192, frames), audio, options={"preset": "ultrafast"})


def cli_run(path: Path) -> tuple[int, float, float, int, str]:
    """(exit code, wall s, CPU s, peak RSS bytes, last stderr line) of one CLI process."""
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "r = subprocess.run([sys.executable, '-m', 'syncnet_fcn', 'detect', sys.argv[1], '--quiet'], "
            "capture_output=True, text=True); "
            "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
            "print(r.returncode, time.perf_counter() - t, u.ru_utime + u.ru_stime, u.ru_maxrss * 1024, "
            "repr((r.stderr.strip().splitlines() or [''])[-1]))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=REPO,
                         check=True).stdout.split(maxsplit=4)
    return int(out[0]), float(out[1]), float(out[2]), int(out[3]), eval(out[4])  # noqa: S307 (our own repr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--clip", default="syncnet_example.avi")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        path = bomb(Path(folder), CLIPS / args.clip, args.frames)
        print(f"{path.name}: {path.stat().st_size / 1024:.0f} KB, {args.frames} frames of 8192×8192")

        code, wall, cpu, peak, line = cli_run(path)
        print(f"CLI (whole process, start-up included): exit {code} in {wall:.2f} s wall, {cpu:.2f} s CPU, "
              f"peak RSS {megabytes(peak)} — {line}")

        server = LocalServer(interval=0.02)
        try:
            idle = server.rss()
            t0 = time.perf_counter()
            status, body = server.upload(path)
            one = time.perf_counter() - t0
            print(f"server, 1 upload: HTTP {status} ({error_code(body)}) in {one:.2f} s; RSS idle {megabytes(idle)}, "
                  f"peak {megabytes(server.peak_since(t0))}")
            answers, times = [], []

            def upload() -> None:
                t = time.perf_counter()
                answers.append(server.upload(path)[0])
                times.append(time.perf_counter() - t)

            t0 = time.perf_counter()
            threads = [threading.Thread(target=upload) for _ in range(args.parallel)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            time.sleep(0.1)
            print(f"server, {args.parallel} at once: HTTP {sorted(answers)}, slowest {max(times):.2f} s; "
                  f"server peak RSS {megabytes(server.peak_since(t0))}")
        finally:
            server.close()


if __name__ == "__main__":
    main()
