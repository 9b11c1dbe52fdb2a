"""``syncnet-fcn fix VIDEO -o OUT``: write a copy whose audio is moved into sync with the faces."""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidArgumentError, SyncNetError
from .common import (
    add_device_argument,
    add_engine_argument,
    add_quiet_argument,
    add_weights_argument,
    input_video,
    stage_progress,
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("fix", help="write a copy of a video with its audio moved into sync")
    p.add_argument("video", help="the out-of-sync video (never modified)")
    p.add_argument("-o", "--out", required=True, help="where to write the corrected copy")
    p.add_argument("--offset", type=int,
                   help="correct this offset in frames (positive = audio early) instead of the measured one")
    p.add_argument("--force", action="store_true", help="apply the measured offset even when it is unreliable")
    p.add_argument("--per-segment", action="store_true",
                   help="correct stretch by stretch where the offset changes over time (from per-window readings)")
    p.add_argument("--timeline", metavar="T.json",
                   help="with --per-segment: the video's timeline (`syncnet-fcn timeline VIDEO -o T.json`) "
                        "instead of measuring it here")
    p.add_argument("--window", type=float, default=10.0,
                   help="with --per-segment and no --timeline: seconds per reading (default 10)")
    add_engine_argument(p)  # the names detect takes: a reading detect gives can be fixed with that engine
    add_weights_argument(p)
    add_device_argument(p)
    add_quiet_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..pipeline import SyncPipeline
    from ..repair import fix_video

    video = input_video(args.video)
    if args.per_segment:
        return run_per_segment(args, video)
    if args.timeline:
        raise InvalidArgumentError("--timeline is read only with --per-segment")
    pipeline = SyncPipeline(engine=args.engine, weights=args.weights, device=args.device)
    with stage_progress(args.quiet) as bar:
        result = fix_video(video, args.out, offset=args.offset, force=args.force, pipeline=pipeline, progress=bar)
    print(f"before: {_reading(result.before)}")
    how = "given" if result.offset_given else "measured"
    print(f"shift:  audio {'delayed' if result.shift_frames >= 0 else 'advanced'} by {abs(result.shift_frames)} "
          f"frames ({abs(result.shift_frames) * 40} ms, {how}); audio re-encoded as {result.audio_codec}, "
          f"copied {', '.join(result.copied_streams) or 'nothing else'}")
    print(f"after:  {_reading(result.after)}")
    print(f"wrote {result.output}")
    return 0


def run_per_segment(args, video: Path) -> int:
    import json

    from ..segment_fix import fix_per_segment, timeline_measure

    if args.offset is not None:
        raise InvalidArgumentError("--offset applies one offset to the whole video; drop it with --per-segment")
    timeline = None
    if args.timeline:
        try:
            timeline = json.loads(Path(args.timeline).read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InvalidArgumentError(f"cannot read the timeline {args.timeline}: {exc}") from None
    engine = "landmark" if args.engine == "auto" else args.engine
    window = float((timeline or {}).get("settings", {}).get("window_s") or args.window)
    with stage_progress(args.quiet) as bar:
        try:
            measure = timeline_measure(engine=engine, window_s=window, progress=bar)
        except SyncNetError as exc:  # the timeline extra (identities) is missing: a given timeline still works
            if timeline is None:
                raise type(exc)(f"{exc} (or give --timeline T.json made where the extra is installed)") from None
            measure = None
            print(f"note: the output is not re-measured: {exc}")
        result = fix_per_segment(video, args.out, timeline=timeline, measure=measure, force=args.force)
    print("stretches:")
    for s in result.stretches:
        verb = "delayed" if s.offset_frames >= 0 else "advanced"
        source = f"read in {s.reliable_windows} window(s)"
        print(f"  {_clock(s.start_s)}-{_clock(s.end_s)}  reading {s.offset_frames:+d} → audio {verb} by "
              f"{abs(s.offset_frames)} frames ({source})")
    after = {(w["start"], w["end"]): w for w in result.after or []}
    print("windows:            before            after")
    for w in result.before:
        print(f"  {_clock(w['start'])}-{_clock(w['end'])}  {_window(w):<16}  "
              f"{_window(after.get((w['start'], w['end']))) if result.after is not None else 'not re-measured'}")
    print(f"audio re-encoded as {result.audio_codec}, copied {', '.join(result.copied_streams) or 'nothing else'}")
    print(f"wrote {result.output}")
    return 0


def _window(w) -> str:
    if w is None or w.get("offset_frames") is None:
        return "no reading"
    return f"{w['offset_frames']:+d} ({'reliable' if w.get('reliable') else 'unreliable'})"


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60):02d}:{seconds % 60:05.2f}"


def _reading(report) -> str:
    if report is None or report.main is None:
        return "no face to read"
    from ..report import describe_reading

    sync = report.main.sync
    return (f"offset {sync.offset_frames:+d} frames, confidence {sync.confidence:.2f}, "
            f"{'reliable' if sync.reliable else 'unreliable'} — {describe_reading(sync)}")
