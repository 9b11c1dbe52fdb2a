"""Speed of the media part of the pipeline: decode + detect + track, and crops.

Prints, per clip, seconds of work per minute of video for the tracking pass (decode at detection
resolution, face detection, scene cuts, IoU tracking) and for the crop pass (full-resolution decode,
224x224 crops of every track), with the peak RSS of a fresh process doing both.

    python benchmarks/tracks_speed.py                       # the default clips from ../shared/clips
    python benchmarks/tracks_speed.py my.mp4 --detect-every 2

Reference: the original pipeline (syncnet-python 0.2.3) costs 122 s per minute of 256-px video, 224 s
at 512 px and 1,075 s at 1080p end to end, with 3.5 GB RSS for a 60 s clip.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO.parent / "shared" / "clips"
DEFAULT_CLIPS = [
    "edtalk_pose_source2.mp4",  # 256 px, 60 s
    "mimictalk_German_20s.mp4",  # 512 px, 20 s
    "latentsync_demo1.mp4",  # 1080x1920, 10 s
    "wav2lipgfpgan_kim_7s_raw.mp4",  # 1920x1080, 7 s
]


def _cpu_s() -> float:
    """CPU seconds of this process (all threads): a steadier figure than wall time on a busy machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(path: str, detect_every: int) -> dict:
    """Run both passes on one clip in this process and return the figures."""
    from syncnet_fcn.crops import iter_track_crops
    from syncnet_fcn.media import probe
    from syncnet_fcn.tracking import TrackingOptions, find_face_tracks

    info = probe(path)
    minutes = info.duration_s / 60
    started, cpu_started = time.perf_counter(), _cpu_s()
    tracks = find_face_tracks(path, options=TrackingOptions(detect_every=detect_every))
    tracking_s, tracking_cpu_s = time.perf_counter() - started, _cpu_s() - cpu_started
    started, cpu_started = time.perf_counter(), _cpu_s()
    n_crops = sum(len(crops) for _, _, crops in iter_track_crops(path, tracks))
    crops_s, crops_cpu_s = time.perf_counter() - started, _cpu_s() - cpu_started
    return {
        "clip": Path(path).name,
        "size": f"{info.width}x{info.height}",
        "duration_s": round(info.duration_s, 2),
        "tracks": len(tracks),
        "crops": n_crops,
        "tracking_s_per_min": round(tracking_s / minutes, 2),
        "crops_s_per_min": round(crops_s / minutes, 2),
        "total_s_per_min": round((tracking_s + crops_s) / minutes, 2),
        "tracking_cpu_s_per_min": round(tracking_cpu_s / minutes, 2),
        "crops_cpu_s_per_min": round(crops_cpu_s / minutes, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="*", help="video files (default: the benchmark clips in ../shared/clips)")
    parser.add_argument("--detect-every", type=int, default=1, help="run the face detector every k-th frame")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child process: one clip, JSON out
    args = parser.parse_args(argv)

    if args.one:
        print(json.dumps(measure(args.clips[0], args.detect_every)))
        return
    paths = args.clips or [str(CLIPS / name) for name in DEFAULT_CLIPS if (CLIPS / name).exists()]
    if not paths:
        sys.exit("no clips: pass video files or provide ../shared/clips")
    print(f"wall seconds per minute of video (CPU seconds of all threads in brackets), detect_every={args.detect_every}")
    header = (f"{'clip':30s} {'size':>10s} {'dur s':>6s} {'tracks':>6s} {'tracking s/min':>16s} {'crops s/min':>14s} "
              f"{'total s/min':>11s} {'peak RSS MB':>11s}")
    print(header)
    print("-" * len(header))
    for path in paths:
        # A fresh process per clip, so that peak RSS is that clip's own.
        done = subprocess.run([sys.executable, __file__, "--one", path, "--detect-every", str(args.detect_every)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{Path(path).name:30s} failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        tracking = f"{r['tracking_s_per_min']:.1f} ({r['tracking_cpu_s_per_min']:.1f})"
        crops = f"{r['crops_s_per_min']:.1f} ({r['crops_cpu_s_per_min']:.1f})"
        print(f"{r['clip'][:30]:30s} {r['size']:>10s} {r['duration_s']:6.1f} {r['tracks']:6d} {tracking:>16s} {crops:>14s} "
              f"{r['total_s_per_min']:11.1f} {r['peak_rss_mb']:11.0f}")


if __name__ == "__main__":
    main()
