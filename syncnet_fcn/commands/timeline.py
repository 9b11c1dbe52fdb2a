"""``syncnet-fcn timeline VIDEO``: who talks or sings when over a long recording, and the offset over time."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import InvalidArgumentError
from .common import add_engine_argument, add_quiet_argument, input_video


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "timeline", help="who talks or sings when over a long recording, named people, sync offset over time")
    p.add_argument("video", help="any video file with an audio track (hours are fine: read once, window by window)")
    p.add_argument("--person", action="append", default=[], metavar="NAME=PHOTOS|@TIME",
                   help="enrol a person by reference photos (A=a1.jpg,a2.jpg) and/or the face on screen at a "
                        "time (A=@00:12:30); repeat for several people")
    p.add_argument("--format", default=None,
                   help="json, srt, vtt, rttm or csv: printed when no -o is given, else the format of -o files "
                        "without a known extension (default json)")
    p.add_argument("-o", "--out", action="append", default=[], metavar="FILE",
                   help="write the result here, format from the extension (.json .srt .vtt .rttm .csv); repeat "
                        "for several formats in one run")
    p.add_argument("--window", type=float, default=10.0, help="seconds per sync reading and per checkpoint (default 10)")
    add_engine_argument(p, choices=("landmark", "syncnet", "fcn"), default="landmark", help="sync engine")
    p.add_argument("--max-offset", type=int, default=15, help="offset search range in frames (default 15)")
    p.add_argument("--plot", metavar="FILE.png", help="draw offset and confidence over the recording")
    p.add_argument("--checkpoint", metavar="FILE",
                   help="where finished windows are kept as they are done (default: the first -o file + "
                        ".partial.jsonl, else VIDEO.timeline.partial.jsonl beside the video)")
    p.add_argument("--resume", action="store_true", help="carry on from the checkpoint's last finished window")
    p.add_argument("--no-voices", action="store_true", help="do not match voices off screen (no resemblyzer needed)")
    p.add_argument("--min-face-size", type=float, default=0, help="ignore faces smaller than this (px)")
    add_quiet_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from .progress import StageProgressBar as _ProgressBar
    from ..timeline import PersonSpec, TimelinePipeline
    from ..tracking import TrackingOptions
    from ..writers import get_writer, writer_for_path

    video = input_video(args.video)
    default_format = args.format or "json"
    get_writer(default_format)  # an unknown format fails before hours of work
    outputs = [(Path(o), writer_for_path(Path(o), default=default_format)) for o in args.out]
    for path, _ in outputs:
        if path.resolve() == video.resolve():
            raise InvalidArgumentError(f"-o {path} would overwrite the input video")
    if args.plot and not args.plot.lower().endswith(".png"):
        raise InvalidArgumentError("--plot writes a PNG: give a file name ending in .png")
    people = [PersonSpec.parse(text) for text in args.person]
    checkpoint = Path(args.checkpoint) if args.checkpoint else (
        Path(str(outputs[0][0]) + ".partial.jsonl") if outputs else video.with_name(video.name + ".timeline.partial.jsonl"))

    bar = None if args.quiet else _ProgressBar()  # percent of the recording, with the time left
    try:
        pipe = TimelinePipeline(engine=args.engine, window_s=args.window, max_offset=args.max_offset, people=people,
                                voices=not args.no_voices, tracking=TrackingOptions(min_face_size=args.min_face_size),
                                progress=None if bar is None else lambda done, total: bar("reading", done / max(total, 1)))
        timeline = pipe.run(video, checkpoint=checkpoint, resume=args.resume)
    finally:
        if bar is not None:
            bar.close()
    for path, writer in outputs:
        writer.write(timeline, path)
    if args.plot:
        from ..timeline_plot import write_timeline_plot

        write_timeline_plot(timeline, args.plot)
    if not outputs:
        sys.stdout.write(get_writer(default_format).render(timeline))
    if timeline.complete:
        checkpoint.unlink(missing_ok=True)  # the outputs now hold everything it kept
    for jump in timeline.jumps:
        print(f"offset jump at {jump['time_s']:.1f} s: {jump['from_frames']:+d} → {jump['to_frames']:+d} frames",
              file=sys.stderr)
    return 0
