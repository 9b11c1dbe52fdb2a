"""`syncnet-fcn fix` on real clips shifted at sample level: does the corrected copy read 0 ± 1?

Every real clip of ../shared/clips (or a subset) gets its audio delayed by each shift (default −12, −7,
−3, +4, +9 frames; delaying by S moves a reading from B to B − S) at sample level in its own sample
rate, in its own container; then `fix` measures the copy, moves the audio back by the reading (or
refuses an unreliable one), and re-measures its output. Reported per shifted clip: the reading before
and after, whether the video packets of the output hash the same as the input's (and the original
clip's), and how far the output's video and audio durations are from the input's.

Goals: of the shifted clips whose reading was reliable, ≥ 95 % read 0 ± 1 after the fix; every
output's video packets identical; durations within one frame (40 ms).

    python benchmarks/fix.py --max-seconds 6 --json fix_short.json     # the 31 real clips up to 6 s
    python benchmarks/fix.py --min-seconds 6 --json fix_long.json      # the other 20

Results are appended to the JSON file as each clip finishes, so an interrupted run keeps them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from syncnet_fcn.native_logs import filter_native_stderr  # noqa: E402
from syncnet_fcn.errors import SyncNetError  # noqa: E402
from syncnet_fcn.pipeline import SyncPipeline  # noqa: E402
from syncnet_fcn.repair import (UnreliableReadingError, fix_video, stream_durations, video_packets_digest,  # noqa: E402
                                write_shifted)

DEFAULT_CLIPS = REPO.parent / "shared" / "clips"
SHIFTS = (-12, -7, -3, 4, 9)
FRAME_S = 0.04


def real_clips(clips: Path, max_seconds: float | None, limit: int | None, min_seconds: float = 0) -> list[Path]:
    manifest = json.loads((clips / "manifest.json").read_text())
    chosen = [clips / e["file"] for e in manifest if e.get("real_or_generated") == "real"
              and min_seconds < e.get("duration_s", 0) <= (max_seconds or float("inf"))
              and (clips / e["file"]).is_file()]
    return chosen[:limit] if limit else chosen


def one_shift(pipeline, clip: Path, tracks, shift: int, work: Path) -> dict:
    shifted = work / f"{clip.stem}.shift{shift:+d}{clip.suffix}"
    fixed = work / f"{clip.stem}.shift{shift:+d}.fixed{clip.suffix}"
    write_shifted(clip, shifted, shift)
    row = {"clip": clip.name, "shift": shift}
    started = time.perf_counter()
    try:
        result = fix_video(shifted, fixed, pipeline=pipeline, tracks=tracks)
    except UnreliableReadingError as exc:
        row.update(outcome="refused", reason=exc.message)
        return row
    except SyncNetError as exc:
        row.update(outcome="error", reason=exc.message)
        return row
    finally:
        row["fix_s"] = round(time.perf_counter() - started, 2)
    before, after = result.before.main.sync, result.after.main.sync if result.after else None
    digest_in, digest_out = video_packets_digest(shifted)[0], video_packets_digest(fixed)[0]
    d_in, d_out = stream_durations(shifted), stream_durations(fixed)
    row.update(
        outcome="fixed", before=int(before.offset_frames), before_reliable=bool(before.reliable),
        after=None if after is None else int(after.offset_frames),
        after_reliable=None if after is None else bool(after.reliable),
        packets_identical=digest_in == digest_out == video_packets_digest(clip)[0],
        video_duration_diff_s=round(abs(d_out.get("video", 0) - d_in.get("video", 0)), 4),
        audio_duration_diff_s=round(abs(d_out.get("audio", 0) - d_in.get("audio", 0)), 4),
    )
    shifted.unlink(missing_ok=True)
    fixed.unlink(missing_ok=True)
    return row


def summarize(rows: list[dict]) -> dict:
    fixed = [r for r in rows if r["outcome"] == "fixed"]
    reliable = [r for r in fixed if r["before_reliable"]]
    in_sync = [r for r in reliable if r["after"] is not None and abs(r["after"]) <= 1]
    within = [r for r in fixed if max(r["video_duration_diff_s"], r["audio_duration_diff_s"]) <= FRAME_S]
    return {
        "shifted_clips": len(rows),
        "refused_unreliable": sum(r["outcome"] == "refused" for r in rows),
        "errors": sum(r["outcome"] == "error" for r in rows),
        "fixed": len(fixed),
        "fixed_from_reliable_reading": len(reliable),
        "reliable_fixed_read_0_pm_1": len(in_sync),
        "reliable_fixed_read_0_pm_1_rate": round(len(in_sync) / len(reliable), 4) if reliable else None,
        "video_packets_identical": f"{sum(r['packets_identical'] for r in fixed)}/{len(fixed)}",
        "durations_within_one_frame": f"{len(within)}/{len(fixed)}",
        "worst_video_duration_diff_s": max((r["video_duration_diff_s"] for r in fixed), default=None),
        "worst_audio_duration_diff_s": max((r["audio_duration_diff_s"] for r in fixed), default=None),
        "misses": [f"{r['clip']} {r['shift']:+d}: {r['before']:+d} -> {r['after']}" for r in reliable
                   if r not in in_sync],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--shifts", type=int, nargs="+", default=list(SHIFTS))
    parser.add_argument("--max-seconds", type=float, help="only clips at most this long")
    parser.add_argument("--min-seconds", type=float, default=0, help="only clips longer than this")
    parser.add_argument("--limit", type=int, help="at most this many clips")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--weights")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    filter_native_stderr()  # mediapipe's routine C++ log lines

    clips = real_clips(args.clips, args.max_seconds, args.limit, args.min_seconds)
    pipeline = SyncPipeline(engine=args.engine, weights=args.weights)
    work = Path(tempfile.mkdtemp(prefix="fix_bench_"))
    rows: list[dict] = []
    print(f"{len(clips)} real clips x shifts {args.shifts}; engine {next(iter(pipeline.engines))}", flush=True)
    for clip in clips:
        tracks = pipeline.find_tracks(clip)  # the video is the same in every shifted copy and output
        if not tracks:
            rows += [{"clip": clip.name, "shift": s, "outcome": "error", "reason": "no face track"} for s in args.shifts]
            continue
        for shift in args.shifts:
            row = one_shift(pipeline, clip, tracks, shift, work)
            rows.append(row)
            print(json.dumps(row), flush=True)
        if args.json:
            args.json.write_text(json.dumps({"summary": summarize(rows), "rows": rows}, indent=2))
    summary = summarize(rows)
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
