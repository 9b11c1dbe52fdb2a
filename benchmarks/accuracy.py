"""Offset accuracy of an engine on the clips of ../shared/clips (issue 3, REFERENCE §5).

Every clip gets copies with its audio shifted at sample level by −12, −7, −3, 0, +4, +9 frames; a copy
is read correctly when within ±1 frame of (the clip's own offset − shift). Prints a table (real clips
and generated ones separately, with a per-corpus breakdown) and optionally writes a JSON summary.

    python benchmarks/accuracy.py --engine landmark --json landmark.json
    python benchmarks/accuracy.py --engine fcn --weights syncnet_v2.model --fast
    python benchmarks/accuracy.py --engine landmark --speed ../shared/clips/visualvoice_interview.mp4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from syncnet_fcn.errors import SyncNetError  # noqa: E402
from syncnet_fcn.evaluation import (  # noqa: E402
    BENCHMARK_SHIFTS,
    CONTEXTS,
    benchmark_summary,
    evaluate_clip,
    format_summary,
    results_to_json,
)

DEFAULT_CLIPS = REPO.parent / "shared" / "clips"
# --fast: a few real clips from different corpora and every shift
FAST_CLIPS = (
    "syncnet_example.avi",
    "grid_sbwe5n.mpg",
    "grid_pwij3p.mpg",
    "lrs2_deepavsr_00001.mp4",
    "lrs2_deepavsr_00024.mp4",
    "pcavs_00015.mp4",
    "pcavs_681100216.mp4",
    "mimictalk_German_20s.mp4",
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engine", default="landmark", choices=["landmark", "syncnet", "fcn", "auto"])
    p.add_argument("--weights", default=None, help="weights for syncnet/fcn")
    p.add_argument("--clips-dir", type=Path, default=DEFAULT_CLIPS, help="folder with manifest.json")
    p.add_argument("--clips", nargs="+", default=None, help="only these clip file names")
    p.add_argument("--fast", action="store_true", help=f"only {len(FAST_CLIPS)} real clips")
    p.add_argument("--no-generated", action="store_true", help="skip gen_* clips")
    p.add_argument("--shifts", type=int, nargs="+", default=list(BENCHMARK_SHIFTS))
    p.add_argument("--max-offset", type=int, default=15)
    p.add_argument("--runtime", default="auto", choices=["auto", "torch", "onnx"], help="what runs the fcn network")
    p.add_argument("--int8", action="store_true", help="fcn: the int8 model ('syncnet-fcn export --int8')")
    p.add_argument("--json", type=Path, default=None, help="write the summary and every reading here")
    p.add_argument("--speed", type=Path, default=None, help="only time a full run on this video")
    return p.parse_args(argv)


def measure_speed(engine: str, weights, video: Path) -> dict:
    """Wall time of a plain pipeline run (tracks + crops + engine) against the video's duration."""
    from syncnet_fcn.pipeline import SyncPipeline

    pipe = SyncPipeline(engine=engine, weights=weights)
    started = time.perf_counter()
    report = pipe.run(video)
    seconds = time.perf_counter() - started
    frames = sum(t.track.n_frames for t in report.tracks)
    return {
        "video": str(video),
        "duration_s": report.duration_s,
        "wall_s": round(seconds, 2),
        "times_real_time": round(report.duration_s / seconds, 2),
        "faces": len(report.tracks),
        "face_frames": frames,
        # face-seconds analysed per second: the engine's cost grows with the number of faces
        "face_times_real_time": round(frames / 25 / seconds, 2),
        "timings": {k: round(v, 2) for k, v in report.timings.items()},
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.speed is not None:
        print(json.dumps(measure_speed(args.engine, args.weights, args.speed), indent=2))
        return 0

    from syncnet_fcn.pipeline import SyncPipeline

    manifest = json.loads((args.clips_dir / "manifest.json").read_text())
    entries = [e for e in manifest if (args.clips_dir / e["file"]).exists()]
    if args.clips:
        entries = [e for e in entries if e["file"] in set(args.clips)]
    elif args.fast:
        entries = [e for e in entries if e["file"] in FAST_CLIPS]
    if args.no_generated:
        entries = [e for e in entries if e.get("real_or_generated") != "generated"]
    if not entries:
        print("no clips to evaluate", file=sys.stderr)
        return 2

    pipe = SyncPipeline(engine=args.engine, weights=args.weights, max_offset=args.max_offset, runtime=args.runtime,
                        int8=args.int8)
    results, failures = [], {}
    started = time.perf_counter()
    for i, entry in enumerate(entries, 1):
        path = args.clips_dir / entry["file"]
        try:
            clip_results = evaluate_clip(
                pipe, path, args.shifts, CONTEXTS, generated=entry.get("real_or_generated") == "generated"
            )
        except SyncNetError as exc:
            failures[entry["file"]] = exc.message
            print(f"[{i}/{len(entries)}] {entry['file']}: {exc.message}", file=sys.stderr)
            continue
        results += clip_results
        readings = " ".join(
            f"{r.shift:+d}:{'-' if r.offset is None else r.offset:>3}{'' if r.correct in (None, True) else '✗'}"
            for r in clip_results
        )
        print(f"[{i}/{len(entries)}] {entry['file']:<42} {readings}", file=sys.stderr, flush=True)

    summary = benchmark_summary(results)
    print(format_summary(summary))
    if failures:
        print(f"{len(failures)} clip(s) gave no reading: " + ", ".join(sorted(failures)))
    elapsed = time.perf_counter() - started
    print(f"engine {args.engine} · {len({r.clip for r in results})} clips · {elapsed:.0f} s")
    if args.json is not None:
        payload = {
            "engine": args.engine,
            "weights": args.weights,
            "runtime": pipe.runtime + (" int8" if args.int8 else ""),
            "shifts": args.shifts,
            "contexts": list(CONTEXTS),
            "summary": summary,
            "failures": failures,
            "results": results_to_json(results),
            "seconds": round(elapsed, 1),
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
