"""Where the media part of the pipeline spends its time: two decoding passes against one.

For each clip, side by side in one process (alternating, ``--repeat`` times, medians printed):

* ``two passes``: ``find_face_tracks`` (its default fast decoding) then ``iter_track_crops``;
* ``one pass``: ``single_pass.iter_tracks_with_crops`` (each frame decoded once, fully).

Both produce every track's 224x224 crops (no engine runs). Time is attributed by wrapping the stage
functions: decoding (PyAV, in the prefetch thread, overlapping the rest), the scene detector with its
thumbnails, face detection with its downscaled frame, crop cutting, and the rest (linking, smoothing,
queues). Stage seconds are summed over threads, so they can add up to more than the wall time; the
process CPU seconds say what the machine paid.

    python benchmarks/one_pass.py                         # a 720p two-face clip and a 1080p one
    python benchmarks/one_pass.py my.mp4 --repeat 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CLIPS = REPO.parent / "shared" / "clips"
DEFAULT_CLIPS = [CLIPS / "visualvoice_interview.mp4", CLIPS / "wav2lipgfpgan_kim_7s_raw.mp4"]
STAGES = ("decode", "scene cuts", "detection", "crops")

spent: dict[str, float] = defaultdict(float)


def _timed(stage: str, function):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[stage] += time.perf_counter() - started
    return wrapper


def _timed_generator(stage: str, function):
    def wrapper(*args, **kwargs):
        items = function(*args, **kwargs)
        while True:
            started = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                spent[stage] += time.perf_counter() - started
            yield item
    return wrapper


def instrument(detector) -> None:
    from scenedetect.detectors import ContentDetector

    from syncnet_fcn import crops, media, single_pass

    media._decode_from = _timed_generator("decode", media._decode_from)
    media.TimelineFrame.thumbnail = _timed("scene cuts", media.TimelineFrame.thumbnail)
    ContentDetector.process_frame = _timed("scene cuts", ContentDetector.process_frame)
    media.TimelineFrame.image = _timed("detection", media.TimelineFrame.image)
    detector.detect = _timed("detection", detector.detect)
    crops.crop_timeline_frame = _timed("crops", crops.crop_timeline_frame)
    single_pass.crop_timeline_frame = crops.crop_timeline_frame


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def two_passes(video, detector) -> int:
    from syncnet_fcn.crops import iter_track_crops
    from syncnet_fcn.tracking import find_face_tracks

    tracks = find_face_tracks(video, detector=detector)
    return sum(len(c) for _, _, c in iter_track_crops(video, tracks, chunk=128))


def one_pass(video, detector) -> int:
    from syncnet_fcn.single_pass import CropChunk, iter_tracks_with_crops

    return sum(len(e.crops) for e in iter_tracks_with_crops(video, detector=detector) if isinstance(e, CropChunk))


def measure(method, video, detector) -> dict:
    spent.clear()
    wall, cpu = time.perf_counter(), _cpu_s()
    n_crops = method(video, detector)
    wall, cpu = time.perf_counter() - wall, _cpu_s() - cpu
    stages = {stage: spent.get(stage, 0.0) for stage in STAGES}
    stages["rest"] = max(0.0, wall - sum(v for k, v in stages.items() if k != "decode"))
    return {"wall_s": wall, "cpu_s": cpu, "crops": n_crops, **{f"{k}_s": v for k, v in stages.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="*", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from detectors import create_detector
    from syncnet_fcn.media import probe

    detector = create_detector("mediapipe", min_confidence=0.5, max_side=None)
    instrument(detector)
    methods = {"two passes": two_passes, "one pass": one_pass}
    rows = []
    for video in args.clips:
        info = probe(video)
        runs = defaultdict(list)
        for _ in range(args.repeat):
            for name, method in methods.items():
                runs[name].append(measure(method, video, detector))
        print(f"\n{video.name}: {info.width}x{info.height}, {info.duration_s:.1f} s (seconds per minute of video, "
              f"median of {args.repeat})")
        print(f"{'':12s} {'wall':>7s} {'cpu':>7s} " + " ".join(f"{s:>11s}" for s in (*STAGES, "rest")))
        per_minute = 60.0 / info.duration_s
        for name in methods:
            row = {"video": video.name, "method": name,
                   **{k: round(statistics.median(r[k] for r in runs[name]) * per_minute, 1)
                      for k in runs[name][0] if k.endswith("_s")}, "crops": runs[name][0]["crops"]}
            rows.append(row)
            print(f"{name:12s} {row['wall_s']:7.1f} {row['cpu_s']:7.1f} "
                  + " ".join(f"{row[f'{s}_s']:11.1f}" for s in (*STAGES, "rest")), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
