"""End-to-end speed and memory: seconds per minute of video and peak RSS, per engine and resolution.

Each (clip, engine) runs in a fresh subprocess so its peak RSS is its own. Without the official weights,
the syncnet/fcn engines run on an official-size network with seeded random weights (speed and memory
do not depend on the values; the printed offsets then mean nothing).

    python benchmarks/pipeline_speed.py [--engines landmark,fcn,syncnet] [--clips a.mp4,b.mp4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO.parent / "shared" / "clips"
DEFAULT_CLIPS = [
    "syncnet_example.avi",          # 224 px face crop, 12.7 s
    "edtalk_pose_source2.mp4",      # 256 px, 60 s
    "mimictalk_German_20s.mp4",     # 512 px, 20 s
    "latentsync_demo1.mp4",         # 1080x1920, 10 s
]


def measure_one(video: str, engine: str, weights: str | None, report_path: str | None = None) -> dict:
    """Runs inside the child process; with ``report_path`` the report (every track's reading) is written there."""
    sys.path.insert(0, str(REPO))
    from syncnet_fcn.pipeline import SyncPipeline

    start = time.perf_counter()
    pipe = SyncPipeline(engine=engine, weights=weights)
    load_s = time.perf_counter() - start
    t0 = time.perf_counter()
    report = pipe.run(video)
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if report_path:
        Path(report_path).write_text(report.to_json())
    t = report.timings
    overhead = t.get("tracks_s", 0) + t.get("crops_s", 0)
    return {
        "video": Path(video).name,
        "engine": report.engine,
        "duration_s": report.duration_s,
        "load_s": round(load_s, 2),
        "wall_s": round(wall, 2),
        "s_per_min": round(wall / report.duration_s * 60, 1),
        "x_realtime": round(report.duration_s / wall, 2),
        "tracks_s": round(t.get("tracks_s", 0), 2),
        "crops_s": round(t.get("crops_s", 0), 2),
        "engine_s": round(t.get("engine_s", 0), 2),
        "overhead_vs_model": round(overhead / max(t.get("engine_s", 1e-9), 1e-9), 2),
        "peak_rss_mb": round(peak_mb),
        "offset": report.offset_frames,
        "n_tracks": len(report.tracks),
    }


def random_official_weights() -> str:
    import torch

    sys.path.insert(0, str(REPO))
    from syncnet_fcn.model import SyncNet, SyncNetConfig

    torch.manual_seed(0)
    path = Path(tempfile.gettempdir()) / "syncnet_fcn_bench_random_official.model"
    if not path.exists():
        torch.save(SyncNet(SyncNetConfig.official()).state_dict(), path)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="landmark,fcn,syncnet")
    parser.add_argument("--clips", default=",".join(DEFAULT_CLIPS))
    parser.add_argument("--weights", help="real weights for syncnet/fcn (default: random official-size)")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--child", nargs=3, metavar=("VIDEO", "ENGINE", "WEIGHTS"), help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)  # with --child: write the report here
    args = parser.parse_args()

    if args.child:
        video, engine, weights = args.child
        print(json.dumps(measure_one(video, engine, None if weights == "-" else weights, args.report)))
        return

    weights = args.weights
    rows = []
    for name in args.clips.split(","):
        video = CLIPS / name if not Path(name).exists() else Path(name)
        if not video.exists():
            print(f"skip {name}: not found", file=sys.stderr)
            continue
        for engine in args.engines.split(","):
            w = "-"
            if engine in ("syncnet", "fcn"):
                w = weights or random_official_weights()
            proc = subprocess.run([sys.executable, __file__, "--child", str(video), engine, w],
                                  capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            if proc.returncode != 0:
                print(f"{name} / {engine}: failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["weights"] = "given" if weights else ("random official-size" if w != "-" else "bundled")
            rows.append(row)
            print(f"{row['video']:28s} {row['engine']:9s} {row['duration_s']:6.1f}s  wall {row['wall_s']:7.1f}s  "
                  f"{row['s_per_min']:7.1f} s/min  ({row['x_realtime']:.2f}x rt)  tracks {row['tracks_s']:.1f}s  "
                  f"crops {row['crops_s']:.1f}s  model {row['engine_s']:.1f}s  overhead/model {row['overhead_vs_model']:.2f}  "
                  f"peak RSS {row['peak_rss_mb']} MB", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
