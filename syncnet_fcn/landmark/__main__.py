"""Fit the landmark engine's members the first way: ``python -m syncnet_fcn.landmark fit``.

The shipped members were then fine-tuned, and their calibration measured on training speakers, by
``python -m syncnet_fcn.landmark_training`` (``--calibrate-only`` re-measures the calibration alone).
"""

from __future__ import annotations

from pathlib import Path

from .models import MODEL_PATH
from .training import fit


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m syncnet_fcn.landmark", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_fit = sub.add_parser("fit", help=f"fit the models on in-sync talking faces → {MODEL_PATH.name}")
    p_fit.add_argument("folders", nargs="*", type=Path, help="folders of face-crop training videos")
    p_fit.add_argument("--tracked", nargs="*", type=Path, default=[],
                       help="folders of full-frame videos whose faces are detected and tracked (the other "
                            "folders' frames are face crops already)")
    p_fit.add_argument("--steps", type=int, default=5000)
    p_fit.add_argument("--cache", type=Path, default=None, help="keep landmarks here between runs")
    args = parser.parse_args(argv)

    from ..media import videos_in

    videos = sorted(v for folder in args.folders for v in videos_in(folder))
    tracked = sorted(v for folder in args.tracked for v in videos_in(folder))
    models = fit(videos, tracked, args.cache, steps=args.steps)
    models.save(MODEL_PATH)
    print(f"wrote {MODEL_PATH}: {models.provenance}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
