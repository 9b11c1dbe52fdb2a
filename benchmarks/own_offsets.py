"""Do the clips presumed in sync read in sync? Independent measures of each clip's own offset.

`accuracy.py` scores a reading against (clip's own offset − shift), and a real clip's own offset is
presumed 0 for the corpora published in sync (REFERENCE §7: "most real clips are in sync"). When a
clip is in fact off by two frames, every engine that reads it correctly is scored wrong at every shift.
This script reads the unshifted clips with independent measures, each to a fraction of a frame:

* each engine given (`--engines`), from the minimum of its offset curve (`evaluation.subframe_minimum`);
* the model-free measure of `corpus_lag.py` (inner-lip opening against speech-band energy,
  cross-correlated), on this clip alone — noisy on one clip, but it shares nothing with the engines.

A clip is **contested** when the measures agree with each other (all within 1.5 frames) and their
median lies 1.5 frames or more from the presumed offset, so that a correct ±1-frame reading of the
presumed offset would be a miss. Contested clips are reported, not relabelled: `accuracy.py` keeps the presumed
offsets. With `--accuracy` files (its JSON output) the clip-level accuracy is also shown without them.

    python benchmarks/own_offsets.py --engines landmark fcn --weights checkpoints/syncnet_light.pt \
        --accuracy landmark.json fcn.json --json own_offsets.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from corpus_lag import corpus_reading  # noqa: E402

from syncnet_fcn.errors import SyncNetError  # noqa: E402
from syncnet_fcn.evaluation import TOLERANCE, corpus_of, own_offset, subframe_minimum  # noqa: E402

DEFAULT_CLIPS = REPO.parent / "shared" / "clips"
MODEL_FREE = "model-free"
# the measures agree when they all lie within this many frames of each other …
AGREE_FRAMES = 1.5
# … and contest the presumed offset when their median is far enough that a reading of it ± TOLERANCE misses
CONTESTED_FRAMES = TOLERANCE + 0.5


def is_contested(deviations: list[float]) -> bool:
    """``deviations``: each measure's reading minus the presumed own offset (NaN: no reading)."""
    d = np.asarray(deviations, dtype=float)
    if len(d) < 2 or not np.isfinite(d).all():
        return False
    return bool(d.max() - d.min() <= AGREE_FRAMES and abs(np.median(d)) >= CONTESTED_FRAMES)


def read_clip(pipe, video: Path, cache: Path | None) -> dict:
    """Sub-frame readings of the unshifted clip: one per engine and the model-free one."""
    from syncnet_fcn.landmark.training import cached_tracks

    face_tracks = pipe.find_tracks(video)  # found once, for the engines and the model-free measure
    readings = {}
    for name, report in pipe.analyze(video, tracks=face_tracks).items():
        main = report.main
        readings[name] = None if main is None else subframe_minimum(main.sync.offset_curve, main.sync.offsets)
    tracks = cached_tracks(video, cache, whole_frame=False, face_tracks=face_tracks)
    longest = max(tracks, key=lambda t: len(t["landmarks"]), default=None)
    value = corpus_reading([longest])[0] if longest is not None else float("nan")
    readings[MODEL_FREE] = None if not np.isfinite(value) else value
    return readings


def accuracy_without(accuracy_json: Path, contested: set[str]) -> dict:
    """Clip-level accuracy of an `accuracy.py --json` file on its real clips, with and without ``contested``."""
    data = json.loads(accuracy_json.read_text())
    scored = [r for r in data["results"] if not r["generated"] and r["expected"] is not None and r["offset"] is not None]

    def rate(rows):
        out = {"n": len(rows), "accuracy": float(np.mean([r["correct"] for r in rows])) if rows else None}
        contexts = sorted({k for r in rows for k in r.get("context_correct", {})}, key=int)
        if contexts:
            out["context"] = {k: float(np.mean([r["context_correct"][k] for r in rows if k in r["context_correct"]]))
                              for k in contexts}
        judged = [r for r in rows if r.get("reliable") is not None]
        if judged:
            trusted = [r["correct"] for r in judged if r["reliable"]]
            out["flagged_reliable"] = len(trusted) / len(judged)
            out["accuracy_if_reliable"] = float(np.mean(trusted)) if trusted else None
        return out

    return {
        "engine": data.get("engine"),
        "weights": data.get("weights"),
        "all": rate(scored),
        "without_contested": rate([r for r in scored if r["clip"] not in contested]),
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engines", nargs="+", default=["landmark"], choices=["landmark", "syncnet", "fcn"])
    p.add_argument("--weights", default=None, help="weights for syncnet/fcn")
    p.add_argument("--clips-dir", type=Path, default=DEFAULT_CLIPS, help="folder with manifest.json")
    p.add_argument("--clips", nargs="+", default=None, help="only these clip file names")
    p.add_argument("--cache", type=Path, default=None, help="keep face-mesh landmarks here between runs")
    p.add_argument("--accuracy", nargs="*", type=Path, default=[], help="accuracy.py --json files to rescore")
    p.add_argument("--json", type=Path, default=None, help="write every reading here")
    return p.parse_args(argv)


def main(argv=None) -> int:
    from syncnet_fcn.pipeline import SyncPipeline

    args = parse_args(argv)
    try:
        manifest = json.loads((args.clips_dir / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {args.clips_dir / 'manifest.json'}: {exc}", file=sys.stderr)
        return 2
    presumed = {e["file"]: own_offset(e["file"]) for e in manifest if e.get("real_or_generated") == "real"}
    names = [n for n, offset in presumed.items() if offset is not None and (not args.clips or n in args.clips)]
    try:
        pipe = SyncPipeline(engines=args.engines, weights=args.weights)
    except SyncNetError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    missing = [e for e in args.engines if e not in pipe.engines]
    if missing:
        print(f"error: {pipe.engine_errors.get(missing[0], missing[0] + ' unavailable')}", file=sys.stderr)
        return 2

    measures = [*args.engines, MODEL_FREE]
    print(f"{'clip':36s} {'corpus':16s} {'presumed':>8s} " + " ".join(f"{m:>10s}" for m in measures) + "  contested")
    rows = []
    for name in names:
        try:
            readings = read_clip(pipe, args.clips_dir / name, args.cache)
        except SyncNetError as exc:
            print(f"{name}: {exc.message}", file=sys.stderr)
            continue
        deviations = {m: None if readings[m] is None else readings[m] - presumed[name] for m in measures}
        contested = is_contested([np.nan if d is None else d for d in deviations.values()])
        rows.append({"clip": name, "corpus": corpus_of(name), "presumed": presumed[name], "readings": readings,
                     "deviations": deviations, "contested": contested})
        cells = " ".join(f"{'-' if readings[m] is None else f'{readings[m]:+.2f}':>10s}" for m in measures)
        print(f"{name:36s} {corpus_of(name):16s} {presumed[name]:+8d} {cells}  {'yes' if contested else ''}",
              flush=True)

    contested = sorted(r["clip"] for r in rows if r["contested"])
    print(f"\ncontested: {len(contested)} of {len(rows)} clips presumed in sync: {', '.join(contested) or 'none'}")
    # do two engines err on the same clips? (deviations, so that known offsets do not make them agree)
    deviations = np.array([[r["deviations"][e] for e in args.engines] for r in rows], dtype=float)
    deviations = deviations[np.isfinite(deviations).all(axis=1)]
    agreement = None
    if len(args.engines) >= 2 and len(deviations) >= 3:
        # rank correlation: one engine's failure on one clip (a reading far off) must not decide it
        agreement = float(spearmanr(deviations[:, 0], deviations[:, 1])[0])
        print(f"rank correlation of the {args.engines[0]} and {args.engines[1]} deviations from the presumed "
              f"offsets over {len(deviations)} clips: {agreement:.2f}")
    rescored = []
    for path in args.accuracy:
        r = accuracy_without(path, set(contested))
        rescored.append(r | {"file": str(path)})
        for label, rates in (("all", r["all"]), ("without the contested clips", r["without_contested"])):
            contexts = ", ".join(f"K={k} {100 * v:.1f} %" for k, v in rates.get("context", {}).items())
            trusted = ""
            if rates.get("accuracy_if_reliable") is not None:
                trusted = (f"; flagged reliable {100 * rates['flagged_reliable']:.1f} %, of those right "
                           f"{100 * rates['accuracy_if_reliable']:.1f} %")
            print(f"{path.name}: {r['engine']}, {label}: clip level {100 * rates['accuracy']:.1f} % of "
                  f"{rates['n']} copies{'; ' + contexts if contexts else ''}{trusted}")
    if args.json:
        args.json.write_text(json.dumps({"measures": measures, "clips": rows, "contested": contested,
                                         "engine_correlation": agreement, "accuracy": rescored}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
