"""``syncnet-fcn fix VIDEO -o OUT``: write a copy whose audio is moved into sync with the faces."""

from __future__ import annotations

from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("fix", help="write a copy of a video with its audio moved into sync")
    p.add_argument("video", help="the out-of-sync video (never modified)")
    p.add_argument("-o", "--out", required=True, help="where to write the corrected copy")
    p.add_argument("--offset", type=int,
                   help="correct this offset in frames (positive = audio early) instead of the measured one")
    p.add_argument("--force", action="store_true", help="apply the measured offset even when it is unreliable")
    p.add_argument("--per-segment", action="store_true",
                   help="correct stretch by stretch where the offset changes over time (needs the timeline)")
    p.add_argument("--engine", default="auto", choices=["auto", "syncnet", "fcn", "landmark"])
    p.add_argument("--weights", help="weights file or registry name")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from .progress import StageProgressBar
    from ..errors import InvalidArgumentError
    from ..pipeline import SyncPipeline
    from ..repair import fix_video

    if args.per_segment:
        raise InvalidArgumentError("--per-segment needs the timeline (per-stretch offsets), which this build "
                                   "does not have yet; fix the whole video, or give --offset N")
    video = Path(args.video)
    if not video.is_file():
        raise InvalidArgumentError(f"no such file: {video}")
    pipeline = SyncPipeline(engine=args.engine, weights=args.weights, device=args.device)
    bar = None if args.quiet else StageProgressBar()
    try:
        result = fix_video(video, args.out, offset=args.offset, force=args.force, pipeline=pipeline, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    print(f"before: {_reading(result.before)}")
    how = "given" if result.offset_given else "measured"
    print(f"shift:  audio {'delayed' if result.shift_frames >= 0 else 'advanced'} by {abs(result.shift_frames)} "
          f"frames ({abs(result.shift_frames) * 40} ms, {how}); audio re-encoded as {result.audio_codec}, "
          f"copied {', '.join(result.copied_streams) or 'nothing else'}")
    print(f"after:  {_reading(result.after)}")
    print(f"wrote {result.output}")
    return 0


def _reading(report) -> str:
    if report is None or report.main is None:
        return "no face to read"
    from ..report import describe_reading

    sync = report.main.sync
    return (f"offset {sync.offset_frames:+d} frames, confidence {sync.confidence:.2f}, "
            f"{'reliable' if sync.reliable else 'unreliable'} — {describe_reading(sync)}")
