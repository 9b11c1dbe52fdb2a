"""``syncnet-fcn export``: ONNX files of a SyncNet member for ``--runtime onnx``, float32 and int8."""

from __future__ import annotations

import sys

from .common import add_weights_argument


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help="write ONNX files of a SyncNet member (float32, and int8 with --int8)")
    add_weights_argument(p, help="weights file or registry name (default: the engines' default weights)")
    p.add_argument("--out", help="folder for the files (default: beside the weights, where the engine looks)")
    p.add_argument("--int8", action="store_true", help="also write the statically quantised int8 video stream")
    p.add_argument("--calibrate-on", nargs="+", metavar="VIDEO_OR_FOLDER", default=[],
                   help="talking-face training videos (folders searched) whose crops set the int8 ranges; "
                        "never evaluation clips")
    p.add_argument("--calibration-videos", type=int, default=64, help="at most this many of them (default 64)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..calibrate import _expand_inputs
    from ..errors import InvalidArgumentError
    from ..model import load_model
    from ..onnx_syncnet import calibration_windows, export
    from ..runtime import resolve_runtime
    from ..weights import resolve_weights

    resolve_runtime("onnx", "cpu", args.int8)  # says what to install when onnxruntime is missing
    if args.int8 and not args.calibrate_on:
        raise InvalidArgumentError("--int8 needs --calibrate-on: training videos whose face crops set the ranges")
    if args.calibration_videos < 1:
        raise InvalidArgumentError("--calibration-videos must be at least 1")
    weights = resolve_weights(args.weights)
    net = load_model(weights, "cpu")
    calibration = ()
    if args.int8:
        found = _expand_inputs(args.calibrate_on)  # files of the folders too; one without a face is skipped
        limit = args.calibration_videos
        videos = [found[k * len(found) // limit] for k in range(limit)] if len(found) > limit else found

        def progress(done, total):
            print(f"\rcalibration crops: {done}/{total} videos", end="", file=sys.stderr, flush=True)

        calibration = calibration_windows(videos, net, progress=progress)
    written = export(net, weights, directory=args.out, int8=args.int8, calibration=calibration)
    if args.int8:
        print(file=sys.stderr)
    for path in written:
        print(path)
    return 0
