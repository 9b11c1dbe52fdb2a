"""Speed of the media part of the pipeline: decode + detect + track, and crops, for several settings.

For every clip and every tracking setting (by default ``dense``: the detector on every frame, and
``default``: the toolkit's default schedule), a fresh process finds the face tracks and cuts all their
224x224 crops. Printed per run: seconds of work per minute of video for the tracking pass (decode,
scene cuts, face detection, IoU tracking) and for the crop pass (decode, crops), CPU seconds of all
threads in brackets (steadier than wall time on a busy machine), the share of frames the detector
ran on, peak RSS, and how far each setting's crops are from the first setting's: the mean (and 1st
percentile) IoU of the crop windows on the frames both cover, and the share of its frames covered.

    python benchmarks/tracks_speed.py                       # the default clips from ../shared/clips
    python benchmarks/tracks_speed.py my.mp4 --settings dense:detect_every=1 default: k8:detect_every=8
    python benchmarks/tracks_speed.py --json figures.json

A setting is ``name:field=value,field=value`` over :class:`syncnet_fcn.tracking.TrackingOptions`.
Reference: the original pipeline (syncnet-python 0.2.3) costs 122 s per minute of 256-px video, 224 s
at 512 px and 1,075 s at 1080p end to end, with 3.5 GB RSS for a 60 s clip.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO.parent / "shared" / "clips"
DEFAULT_CLIPS = [
    "edtalk_pose_source2.mp4",  # 256 px, 60 s
    "mimictalk_German_20s.mp4",  # 512 px, 20 s
    "visualvoice_interview.mp4",  # 1280x720, two faces, 17.6 s
    "latentsync_demo1.mp4",  # 1080x1920 HEVC, 10 s
    "wav2lipgfpgan_kim_7s_raw.mp4",  # 1920x1080, 7.5 s
]
DEFAULT_SETTINGS = ["dense:detect_every=1", "default:"]


def _cpu_s() -> float:
    """CPU seconds of this process (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def parse_setting(text: str) -> tuple[str, dict]:
    """``"name:field=value,..."`` → ``(name, TrackingOptions keyword arguments)``."""
    from syncnet_fcn.tracking import TrackingOptions

    name, _, assignments = text.partition(":")
    fields = {f.name: f for f in dataclasses.fields(TrackingOptions)}
    defaults = TrackingOptions()
    options = {}
    for item in filter(None, assignments.split(",")):
        key, _, value = item.partition("=")
        if key not in fields:
            raise SystemExit(f"unknown tracking option {key!r} in setting {text!r}")
        kind = type(getattr(defaults, key))
        options[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return name or "default", options


def measure(path: str, options: dict) -> dict:
    """Run both passes on one clip in this process; figures and the crop windows of every track."""
    from detectors import create_detector
    from syncnet_fcn.crops import crop_window, iter_track_crops
    from syncnet_fcn.media import probe
    from syncnet_fcn.tracking import TrackingOptions, find_face_tracks

    info = probe(path)
    minutes = info.duration_s / 60
    tracking = TrackingOptions(**options)
    detector = create_detector("mediapipe", min_confidence=tracking.min_confidence, max_side=None)
    calls = []
    detect = detector.detect
    detector.detect = lambda frame: calls.append(1) or detect(frame)

    started, cpu_started = time.perf_counter(), _cpu_s()
    tracks = find_face_tracks(path, detector=detector, options=tracking)
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
        "detected_share": round(len(calls) / max(info.n_frames, 1), 3),
        "tracking_s_per_min": round(tracking_s / minutes, 2),
        "crops_s_per_min": round(crops_s / minutes, 2),
        "total_s_per_min": round((tracking_s + crops_s) / minutes, 2),
        "tracking_cpu_s_per_min": round(tracking_cpu_s / minutes, 2),
        "crops_cpu_s_per_min": round(crops_cpu_s / minutes, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "windows": [{"start": t.start_frame, "boxes": [list(crop_window(b)) for b in t.boxes]} for t in tracks],
    }


def crop_agreement(reference: list[dict], other: list[dict]) -> tuple[float, float, float]:
    """Mean and 1st-percentile IoU of crop windows against the reference tracks (each matched to
    the overlapping track that agrees best), and the share of reference frames covered."""
    ious, covered, total = [], 0, 0
    for ref in reference:
        ref_boxes = np.asarray(ref["boxes"], np.float64)
        total += len(ref_boxes)
        best = None
        for track in other:
            boxes = np.asarray(track["boxes"], np.float64)
            lo = max(ref["start"], track["start"])
            hi = min(ref["start"] + len(ref_boxes), track["start"] + len(boxes))
            if hi <= lo:
                continue
            iou = _window_iou(ref_boxes[lo - ref["start"]:hi - ref["start"]],
                              boxes[lo - track["start"]:hi - track["start"]])
            if best is None or iou.mean() > best.mean():
                best = iou
        if best is not None:
            ious.append(best)
            covered += len(best)
    if not ious:
        return float("nan"), float("nan"), 0.0
    ious = np.concatenate(ious)
    return float(ious.mean()), float(np.percentile(ious, 1)), covered / max(total, 1)


def _window_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of (top, bottom, left, right) windows."""
    height = np.clip(np.minimum(a[:, 1], b[:, 1]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    width = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 2], b[:, 2]), 0, None)
    inter = height * width
    area = lambda w: (w[:, 1] - w[:, 0]) * (w[:, 3] - w[:, 2])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="*", help="video files (default: the benchmark clips in ../shared/clips)")
    parser.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS,
                        help="name:field=value,... over TrackingOptions; the first is the IoU reference")
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child process: one clip, one setting, JSON out
    args = parser.parse_args(argv)

    if args.one:
        print(json.dumps(measure(args.clips[0], json.loads(args.one))))
        return
    paths = args.clips or [str(CLIPS / name) for name in DEFAULT_CLIPS if (CLIPS / name).exists()]
    if not paths:
        sys.exit("no clips: pass video files or provide ../shared/clips")
    settings = [parse_setting(text) for text in args.settings]
    print("seconds per minute of video, wall (CPU of all threads); IoU of crop windows vs the first setting")
    header = (f"{'clip':28s} {'size':>9s} {'dur s':>5s} {'setting':>8s} {'detected':>8s} {'tracking s/min':>15s} "
              f"{'crops s/min':>12s} {'total':>6s} {'RSS MB':>6s} {'crop IoU mean/p1':>16s} {'covered':>7s}")
    print(header)
    print("-" * len(header))
    results = []
    for path in paths:
        reference = None
        for name, options in settings:
            # A fresh process per run, so that peak RSS and caches are that run's own.
            done = subprocess.run([sys.executable, __file__, path, "--one", json.dumps(options)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode
                print(f"{Path(path).name[:28]:28s} {name:>8s} failed: {reason}")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            windows = r.pop("windows")
            if reference is None:
                reference = windows
            mean_iou, p1_iou, covered = crop_agreement(reference, windows)
            r.update(setting=name, options=options, crop_iou_mean=round(mean_iou, 4), crop_iou_p1=round(p1_iou, 4),
                     covered=round(covered, 4))
            results.append(r)
            tracking = f"{r['tracking_s_per_min']:.1f} ({r['tracking_cpu_s_per_min']:.1f})"
            crops = f"{r['crops_s_per_min']:.1f} ({r['crops_cpu_s_per_min']:.1f})"
            agreement = f"{mean_iou:.3f}/{p1_iou:.3f}"
            print(f"{r['clip'][:28]:28s} {r['size']:>9s} {r['duration_s']:5.1f} {name[:8]:>8s} "
                  f"{r['detected_share']:8.0%} {tracking:>15s} {crops:>12s} {r['total_s_per_min']:6.1f} "
                  f"{r['peak_rss_mb']:6.0f} {agreement:>16s} {covered:7.1%}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
