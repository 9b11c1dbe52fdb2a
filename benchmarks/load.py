"""Load on a local server: C clients × N requests each; 5xx count, latency percentiles, server RSS over time.

Starts ``python app.py`` (waitress) on 127.0.0.1 and sends a mix that a public server sees: health and
OpenAPI reads, the page, real analyses of a 1 s talking-face clip, and uploads that must be refused
(random bytes, an audio-only file, a video declaring 8192×8192 frames, an unknown job). Prints every
status seen, latency percentiles per kind, the server's RSS every 50 requests, and its RSS after the
first 10 requests against after the last.

    python benchmarks/load.py [--clients 8] [--requests 50] [--clip syncnet_example.avi] [--queue-wait 300]
                              [--repo OTHER_CHECKOUT]   # serve another checkout's app.py (before/after)
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from server_harness import CLIPS, LocalServer, megabytes

# one cycle of request kinds; client i starts at position i so the kinds interleave
MIX = ["health", "analysis", "random_bytes", "openapi", "huge_frames", "health", "audio_only", "page",
       "unknown_job", "analysis"]


def build_files(folder: Path, clip: Path) -> dict[str, Path]:
    from hostile_corpus import _blank, _source, write_media

    frames, audio = _source(clip, 1.0)
    files = {"analysis": write_media(folder / "talk_1s.mp4", frames, audio),
             "audio_only": write_media(folder / "voice.m4a", None, audio),
             "huge_frames": write_media(folder / "huge.mkv", _blank(8192, 8192, 2), audio[:1280],
                                        options={"preset": "ultrafast"})}
    random_bytes = folder / "random.mp4"
    random_bytes.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    files["random_bytes"] = random_bytes
    return files


def send(server: LocalServer, kind: str, files: dict[str, Path]) -> int:
    if kind == "health":
        return server.request("GET", "/api/health")[0]
    if kind == "openapi":
        return server.request("GET", "/api/openapi.json")[0]
    if kind == "page":
        return server.request("GET", "/")[0]
    if kind == "unknown_job":
        return server.request("GET", "/api/jobs/0123456789abcdef")[0]
    return server.upload(files[kind], fields={"engine": "auto"})[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50, help="per client")
    parser.add_argument("--clip", default="syncnet_example.avi")
    parser.add_argument("--queue-wait", type=float, default=300,
                        help="server's SYNCNET_FCN_QUEUE_WAIT_S: how long an analysis may wait for the worker "
                             "before 503 (the default 15 s is for interactive use; a load test queues deeper)")
    parser.add_argument("--repo", type=Path, default=None, help="serve this checkout's app.py instead")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        files = build_files(Path(folder), CLIPS / args.clip)
        server = LocalServer(env={"SYNCNET_FCN_QUEUE_WAIT_S": str(args.queue_wait)},
                             **({"repo": args.repo.resolve()} if args.repo else {}))
        lock = threading.Lock()
        latencies: dict[str, list[float]] = collections.defaultdict(list)
        statuses: collections.Counter = collections.Counter()
        done = [0]
        milestones: dict[int, int] = {}
        total = args.clients * args.requests

        def client(index: int) -> None:
            for j in range(args.requests):
                kind = MIX[(index + j) % len(MIX)]
                t0 = time.perf_counter()
                try:
                    status = send(server, kind, files)
                except OSError as exc:
                    status = f"connection error ({type(exc).__name__})"
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies[kind].append(elapsed)
                    statuses[(kind, status)] += 1
                    done[0] += 1
                    if done[0] in (10, total) or done[0] % 50 == 0:
                        milestones[done[0]] = server.rss()

        try:
            started = time.perf_counter()
            start_rss = server.rss()
            threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
            peak = server.peak_since(started)
        finally:
            server.close()

    server_errors = sum(n for (_, status), n in statuses.items() if not isinstance(status, int) or status >= 500)
    print(f"{args.clients} clients × {args.requests} requests = {total} in {wall:.0f} s "
          f"(server: waitress, 1 analysis worker)")
    print(f"5xx or failed connections: {server_errors}")
    print("statuses:", ", ".join(f"{kind} {status}: {n}" for (kind, status), n in sorted(statuses.items(),
                                                                                         key=str)))
    print(f"{'kind':14s} {'n':>4s} {'p50 s':>7s} {'p90 s':>7s} {'p99 s':>7s} {'max s':>7s}")
    for kind, values in sorted(latencies.items()):
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        print(f"{kind:14s} {len(values):4d} {p50:7.3f} {p90:7.3f} {p99:7.3f} {max(values):7.3f}")
    print(f"server RSS at start {megabytes(start_rss)}, peak {megabytes(peak)}")
    print("server RSS after n requests: " + ", ".join(f"{n}: {megabytes(r)}" for n, r in sorted(milestones.items())))
    first, last = milestones.get(10), milestones.get(total)
    if first and last:
        print(f"growth from request 10 to {total}: {megabytes(last - first)}")


if __name__ == "__main__":
    main()
