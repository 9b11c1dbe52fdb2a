"""Build the landmark engine's stored files: ``python -m syncnet_fcn.landmark fit | calibrate``."""

from __future__ import annotations

import json
from pathlib import Path

from .calibration import calibrate, calibration_samples
from .models import CALIBRATION_PATH, MODEL_PATH
from .training import fit


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m syncnet_fcn.landmark", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_fit = sub.add_parser("fit", help=f"fit the models on in-sync talking faces → {MODEL_PATH.name}")
    p_fit.add_argument("folders", nargs="*", type=Path, help="folders of face-crop training videos")
    p_fit.add_argument("--tracked", nargs="*", type=Path, default=[],
                       help="folders of full-frame videos whose faces are detected and tracked (the other "
                            "folders' frames are face crops already)")
    p_fit.add_argument("--steps", type=int, default=5000)
    p_fit.add_argument("--cache", type=Path, default=None, help="keep landmarks here between runs")
    p_cal = sub.add_parser("calibrate", help=f"measure bias and threshold on real clips → {CALIBRATION_PATH.name}")
    p_cal.add_argument("clips_dir", type=Path, help="folder with manifest.json (../shared/clips)")
    p_cal.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.command == "fit":
        from ..media import videos_in

        videos = sorted(v for folder in args.folders for v in videos_in(folder))
        tracked = sorted(v for folder in args.tracked for v in videos_in(folder))
        models = fit(videos, tracked, args.cache, steps=args.steps)
        models.save(MODEL_PATH)
        print(f"wrote {MODEL_PATH}: {models.provenance}")
    else:
        samples = calibration_samples(args.clips_dir, args.cache)
        calibration = calibrate(samples)
        calibration["measured_on"] = f"{len(samples)} real clips of {args.clips_dir.name}/manifest.json"
        CALIBRATION_PATH.write_text(json.dumps(calibration, indent=1) + "\n")
        print(f"wrote {CALIBRATION_PATH}: bias {calibration['bias_frames']:+.3f} frames, "
              f"reliable_confidence {calibration['reliable_confidence']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
