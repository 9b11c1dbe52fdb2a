"""The fcn engine step on torch float32, ONNX Runtime float32 and ONNX int8, side by side on the same crops.

The weights (default: the light checkpoint, its calibration files with it) are copied to a temporary
folder and exported there, the int8 model calibrated on ``--calibrate-on`` training videos (never
evaluation clips). The clip's frames, resized to 224x224, stand in for crops (``syncnet_example.avi``
is a face crop already). Each round times every runtime once (push in chunks of 128, then finish),
rounds alternate the order; medians over ``--rounds`` are printed with the ratio to torch, and the
offsets read.

    python benchmarks/runtime_speed.py [--clip FILE] [--weights FILE] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=SHARED / "clips" / "syncnet_example.avi")
    parser.add_argument("--weights", type=Path, default=REPO / "checkpoints" / "syncnet_light.pt")
    parser.add_argument("--calibrate-on", type=Path, default=SHARED / "train" / "grid_s1")
    parser.add_argument("--calibration-videos", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import cv2
    import numpy as np

    from syncnet_fcn.cli import main as cli
    from syncnet_fcn.engines.fcn import FCNEngine
    from syncnet_fcn.media import iter_frames, load_audio

    crops = np.stack([cv2.resize(f, (224, 224), interpolation=cv2.INTER_AREA) for _, f in iter_frames(args.clip)])
    audio = load_audio(args.clip, end_frame=len(crops))
    with tempfile.TemporaryDirectory(prefix="syncnet_fcn_runtime_") as folder:
        for source in args.weights.parent.glob(args.weights.name + "*"):
            if not source.name.endswith(".onnx"):
                shutil.copy(source, Path(folder) / source.name)
        weights = Path(folder) / args.weights.name
        if cli(["export", "--weights", str(weights), "--int8", "--calibrate-on", str(args.calibrate_on),
                "--calibration-videos", str(args.calibration_videos)]) != 0:
            raise SystemExit("export failed")
        engines = {"torch float32": FCNEngine.from_weights(str(weights), runtime="torch"),
                   "onnx float32": FCNEngine.from_weights(str(weights), runtime="onnx"),
                   "onnx int8": FCNEngine.from_weights(str(weights), runtime="onnx", int8=True)}
        seconds = {name: [] for name in engines}
        offsets = {}
        for round_ in range(args.rounds):
            order = list(engines) if round_ % 2 == 0 else list(reversed(engines))
            for name in order:
                started = time.perf_counter()
                scorer = engines[name].start_track(audio, len(crops), 15)
                for first in range(0, len(crops), 128):
                    scorer.push(crops[first:first + 128])
                sync = scorer.finish()
                seconds[name].append(time.perf_counter() - started)
                offsets[name] = sync.offset_frames
    base = statistics.median(seconds["torch float32"])
    print(f"{args.clip.name}: {len(crops)} frames, weights {args.weights.name}, median of {args.rounds} rounds")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"{name:14s} {median:7.2f} s  ({len(crops) / 25 / median:6.1f}x real time)  "
              f"{base / median:5.2f}x torch  offset {offsets[name]:+d}")


if __name__ == "__main__":
    main()
