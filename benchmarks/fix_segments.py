"""`syncnet-fcn fix --per-segment` on real clips whose offset changes half way: both halves 0 ± 1 after?

Each chosen real clip of ../shared/clips is played twice in a row (its frames re-encoded as H.264, its
audio at 16 kHz AAC); the second copy's audio is delayed by each shift (default −7 and +5 frames) at
sample level, so the recording's offset jumps by the shift at the join. The per-segment fix then reads
it window by window (one window per copy, so a window never straddles the join), plans the stretches,
writes the corrected copy and reads that again.

Reported per case: the readings of both halves before and after, the stretches, whether the output's
video packets hash the same as the input's and how far its video and audio durations are from the
input's. Summary: of the cases whose two halves were read reliably, how many read 0 ± 1 in both halves
afterwards.

    python benchmarks/fix_segments.py --limit 6 --json fix_segments.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from syncnet_fcn.errors import SyncNetError  # noqa: E402
from syncnet_fcn.media import encode_audio, iter_frames, load_audio, shift_audio  # noqa: E402
from syncnet_fcn.native_logs import filter_native_stderr  # noqa: E402
from syncnet_fcn.repair import stream_durations, video_packets_digest  # noqa: E402
from syncnet_fcn.segment_fix import fix_per_segment, timeline_measure  # noqa: E402

DEFAULT_CLIPS = REPO.parent / "shared" / "clips"
SHIFTS = (-7, 5)
FRAME_S = 0.04
SAMPLES_PER_FRAME = 640  # 16 kHz / 25 fps


def real_clips(clips: Path, min_seconds: float, max_seconds: float, limit: int | None) -> list[Path]:
    manifest = json.loads((clips / "manifest.json").read_text())
    chosen = [clips / e["file"] for e in manifest if e.get("real_or_generated") == "real"
              and min_seconds <= e.get("duration_s", 0) <= max_seconds and (clips / e["file"]).is_file()]
    return chosen[:limit] if limit else chosen


def drifting_copy(clip: Path, shift: int, out: Path) -> float:
    """Write ``clip`` twice in a row to ``out``, the second copy's audio delayed by ``shift`` frames.
    Returns the length of one copy in seconds."""
    frames = [image for _, image in iter_frames(clip)]
    audio = load_audio(clip)
    need = len(frames) * SAMPLES_PER_FRAME
    audio = np.pad(audio[:need], (0, max(0, need - len(audio))))
    height, width = frames[0].shape[:2]
    with av.open(str(out), "w") as sink:
        video = sink.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
        video.codec_context.time_base = Fraction(1, 25)
        sound = sink.add_stream("aac", rate=16000, layout="mono")
        sound.time_base = Fraction(1, 16000)
        for index, image in enumerate(frames + frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:video.height, :video.width]),
                                               format="bgr24")
            frame.pts = index
            sink.mux(video.encode(frame))
        sink.mux(video.encode(None))
        encode_audio(sink, sound, np.concatenate([audio, shift_audio(audio, shift)]))
    return len(frames) / 25


def one_case(clip: Path, shift: int, work: Path) -> dict:
    drifting = work / f"{clip.stem}.drift{shift:+d}.mp4"
    fixed = work / f"{clip.stem}.drift{shift:+d}.fixed.mp4"
    half_s = drifting_copy(clip, shift, drifting)
    row = {"clip": clip.name, "shift": shift, "half_s": half_s}
    started = time.perf_counter()
    try:
        result = fix_per_segment(drifting, fixed, measure=timeline_measure(window_s=max(2.0, half_s)))
    except SyncNetError as exc:
        row.update(outcome="refused", reason=str(exc))
        return row
    row["seconds"] = round(time.perf_counter() - started, 1)
    pick = ("start", "offset_frames", "reliable")
    row["before"] = [{k: w.get(k) for k in pick} for w in result.before]
    row["after"] = [{k: w.get(k) for k in pick} for w in result.after]
    row["stretches"] = [s.to_dict() for s in result.stretches]
    row["packets_identical"] = video_packets_digest(fixed) == video_packets_digest(drifting)
    d_in, d_out = stream_durations(drifting), stream_durations(fixed)
    row["duration_diff_s"] = {k: round(abs(d_out[k] - d_in[k]), 4) for k in d_in if k in d_out}
    both_read = len(result.before) == 2 and all(w.get("reliable") for w in result.before)
    row["outcome"] = "fixed" if both_read else "fixed (a half read unreliably)"
    row["ok"] = both_read and len(result.after) == 2 and all(
        w.get("offset_frames") is not None and abs(w["offset_frames"]) <= 1 for w in result.after)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--min-seconds", type=float, default=2.0, help="each copy must be a window long")
    parser.add_argument("--max-seconds", type=float, default=6.0)
    parser.add_argument("--limit", type=int, default=6)
    parser.add_argument("--shifts", type=int, nargs="+", default=list(SHIFTS))
    parser.add_argument("--json", type=Path, help="write every case here")
    args = parser.parse_args(argv)
    filter_native_stderr()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in real_clips(args.clips, args.min_seconds, args.max_seconds, args.limit):
            for shift in args.shifts:
                row = one_case(clip, shift, Path(tmp))
                rows.append(row)
                halves = lambda key: " ".join(f"{w['offset_frames']:+d}{'' if w['reliable'] else '?'}"  # noqa: E731
                                              if w["offset_frames"] is not None else "-" for w in row.get(key, []))
                print(f"{clip.name:40s} {shift:+3d}  {row['outcome']:30s} before {halves('before'):10s} "
                      f"after {halves('after'):10s} packets {row.get('packets_identical')} "
                      f"durations {row.get('duration_diff_s')}", flush=True)
                if args.json:
                    args.json.write_text(json.dumps(rows, indent=1))
    read = [r for r in rows if r["outcome"] == "fixed"]
    ok = sum(r["ok"] for r in read)
    fixed = [r for r in rows if "packets_identical" in r]
    print(f"\n{len(rows)} cases; both halves read reliably in {len(read)}; of those {ok} read 0 ± 1 in both halves "
          f"after ({100 * ok / max(1, len(read)):.0f} %)")
    print(f"video packets identical {sum(r['packets_identical'] for r in fixed)}/{len(fixed)}; durations within "
          f"one frame {sum(max(r['duration_diff_s'].values()) <= FRAME_S for r in fixed)}/{len(fixed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
