"""Command line: ``syncnet-fcn detect | engines | weights | calibrate | train | monitor``.

User errors print one line (``error: …``) on stderr and exit with code 2; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from . import SIGN_CONVENTION, __version__
from .commands import export
from .commands import timeline as timeline_command
from .errors import InvalidArgumentError, SyncNetError
from .commands import monitor as monitor_command
from .commands.common import (
    add_device_argument,
    add_engine_argument,
    add_quiet_argument,
    add_weights_argument,
    check_output_file,
    input_video,
    stage_progress,
)
from .native_logs import filter_native_stderr
from .writers import write_text_atomic

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # run as the program (not called from Python): keep mediapipe's log lines off the terminal
        filter_native_stderr()
    # the train options come from the training module, which imports torch (~1.5 s): only when asked for
    parser = build_parser(with_train_options="train" in (sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args) or 0
    except SyncNetError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser(with_train_options: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncnet-fcn",
        description="Audio-visual sync: per face track, the audio-video offset, confidence and LSE-C/LSE-D.",
        epilog=SIGN_CONVENTION,
    )
    parser.add_argument("--version", action="version", version=f"syncnet-fcn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("detect", help="measure the audio-video offset of every face in a video")
    p.add_argument("video", help="any video file with an audio track")
    add_engine_argument(p, help="auto: fcn on official weights, else fused when its fit beat each member, else landmark")
    add_weights_argument(p, help="weights file or registry name (default: official if cached, else project checkpoint)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    p.add_argument("--full", action="store_true", help="include per-frame face boxes in the JSON")
    p.add_argument("--out", help="also write the JSON document to this file")
    p.add_argument("--max-offset", type=int, default=15, help="search range in frames (default 15 = ±0.6 s)")
    p.add_argument("--min-track-frames", type=int, default=25, help="shortest face track kept (default 25 = 1 s; the original used 100)")
    p.add_argument("--min-face-size", type=float, default=0, help="smallest mean face size in px (the original used 100)")
    add_device_argument(p, default="auto", help="torch device for the syncnet/fcn engines: auto (a CUDA GPU "
                        "when there is one), cpu, cuda or cuda:N")
    p.add_argument("--runtime", default="auto", choices=["auto", "torch", "onnx"],
                   help="what runs the fcn engine's network: auto (ONNX Runtime on the CPU when installed)")
    p.add_argument("--int8", action="store_true", help="fcn: the int8 model written by 'syncnet-fcn export --int8'")
    add_quiet_argument(p)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("engines", help="which engines can run here, and why not")
    add_weights_argument(p, help=None)
    p.set_defaults(func=cmd_engines)

    weights_parser = sub.add_parser("weights", help="list or download model weights")
    wsub = weights_parser.add_subparsers(dest="weights_command", metavar="ACTION")
    w = wsub.add_parser("list", help="known weights and where they are")
    w.set_defaults(func=cmd_weights_list)
    w = wsub.add_parser("download", help="download weights into the cache")
    w.add_argument("name", nargs="?", default="syncnet_v2")
    w.add_argument("--dest", help="directory (default: the cache, $SYNCNET_FCN_CACHE)")
    w.set_defaults(func=cmd_weights_download)
    weights_parser.set_defaults(func=lambda _args: (weights_parser.print_help(), EXIT_USAGE)[1])

    p = sub.add_parser("calibrate", help="fit FCN-SyncNet's distance calibration for a weights file")
    p.add_argument("inputs", nargs="+", help="videos or audio files with speech (any, not evaluation clips)")
    add_weights_argument(p)
    p.add_argument("--out", help="where to write the calibration (default: beside the weights)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("thresholds", help="measure where a weights file's confidences stop meaning sync")
    p.add_argument("inputs", nargs="+", help="talking-face videos (folders allowed), at least two")
    add_weights_argument(p)
    p.add_argument("--out", help="where to write them (default: beside the weights)")
    p.set_defaults(func=cmd_thresholds)

    export.add_parser(sub)
    timeline_command.add_parser(sub)

    p = sub.add_parser("train", help="train a SyncNet-family model on talking-face footage")
    p.set_defaults(func=cmd_train)
    if with_train_options:
        _add_train_arguments(p)
    importlib.import_module(".commands.eval", __package__).add_parser(sub)
    importlib.import_module(".commands.fix", __package__).add_parser(sub)
    monitor_command.add_parser(sub)
    return parser


# -- commands -------------------------------------------------------------------------------------------


def cmd_detect(args) -> int:
    video = input_video(args.video)
    out = Path(args.out) if args.out else None
    if out is not None and out.resolve() == video.resolve():
        raise InvalidArgumentError("--out would overwrite the input video")
    if out is not None:
        check_output_file(out, "--out")
    from .media import probe

    probe(video)  # refuses unreadable or oversized media from its headers, before any model loads
    from .pipeline import SyncPipeline
    from .tracking import TrackingOptions

    tracking = TrackingOptions(min_track_frames=args.min_track_frames, min_face_size=args.min_face_size)
    with stage_progress(args.quiet) as bar:
        pipe = SyncPipeline(engine=args.engine, weights=args.weights, max_offset=args.max_offset,
                            device=args.device, runtime=args.runtime, int8=args.int8, tracking=tracking,
                            progress=bar)
        report = pipe.run(video)
    document = report.to_json(full=args.full)
    if out is not None:
        try:
            write_text_atomic(out, document + "\n")
        except OSError as exc:  # disk full, folder removed meanwhile: the result is still printed below
            print(document if args.json else report.format_table())
            raise InvalidArgumentError(f"cannot write --out {out}: {exc.strerror or exc}") from None
    print(document if args.json else report.format_table())
    return 0


def cmd_engines(args) -> int:
    from .engines import available_engines

    for name, status in available_engines(args.weights).items():
        mark = "yes" if status["available"] else "no "
        print(f"{name:9s} {mark}  {status['reason']}")
    return 0


def cmd_weights_list(args) -> int:
    from .weights import REGISTRY, cache_dir, weights_status

    print(f"cache: {cache_dir()}")
    for name, entry in REGISTRY.items():
        status = weights_status(name)
        print(f"{name:22s} {'present' if status['available'] else 'absent ':7s}  {entry.get('description', '')}")
        if not status["available"]:
            print(f"{'':22s} {status['reason']}")
    return 0


def cmd_weights_download(args) -> int:
    from .weights import download

    path = download(args.name, dest_dir=args.dest, progress=True)
    print(path)
    return 0


def cmd_calibrate(args) -> int:
    from .calibrate import run_calibration

    result = run_calibration(args.weights, [Path(p) for p in args.inputs], out=args.out)
    print(json.dumps(result, indent=2))
    return 0


def cmd_thresholds(args) -> int:
    from .calibrate import run_thresholds

    print(json.dumps(run_thresholds(args.weights, [Path(p) for p in args.inputs], out=args.out), indent=2))
    return 0


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    try:
        from .train import add_arguments
    except ImportError:  # training code not installed in this build
        return
    add_arguments(parser)


def cmd_train(args) -> int:
    from .train import run_from_args

    run_from_args(args)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
