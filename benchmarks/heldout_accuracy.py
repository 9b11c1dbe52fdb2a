"""Offset accuracy of landmark models on speakers they never trained on (issue 15).

The validation half of ``syncnet_fcn.training_corpus.split_by_speaker`` (harvest2 speakers held out,
every clip aligned by its source page's measured lag, clips that do not read in sync dropped) gets the
benchmark's treatment: copies with the sound shifted at sample level by −12, −7, −3, 0, +4, +9 frames,
read within ±1 frame of −shift, at clip level and at 5/15/50-frame contexts, and how often readings
flagged reliable are right. Works from the landmark cache (face mesh computed once).

    python benchmarks/heldout_accuracy.py --cache /work/cache/accuracy/lm
    python benchmarks/heldout_accuracy.py --cache DIR --model new.pt --calibration new.json
    python benchmarks/heldout_accuracy.py --cache DIR --benchmark-clips   # evaluation clips, from the cache

``--benchmark-clips`` reads the evaluation clips' cached face tracks the same way (main track by the
report's rule): a quick way to compare models before the full ``benchmarks/accuracy.py`` run, whose
figures are the ones to report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from syncnet_fcn.evaluation import (  # noqa: E402
    BENCHMARK_SHIFTS,
    CONTEXTS,
    ShiftResult,
    benchmark_summary,
    context_accuracy,
    corpus_of,
    format_summary,
    main_track_index,
    own_offset,
    results_to_json,
)

SHARED = REPO.parent / "shared"


def read_copies(name, landmarks, appearance, audio_of_shift, own, models, calibration, corpus, generated=False,
                max_offset=15):
    """ShiftResults of one track (or several: ``landmarks`` a list) under every benchmark shift."""
    from syncnet_fcn.landmark.reading import score_track

    many = isinstance(landmarks, list)
    tracks = list(zip(landmarks, appearance)) if many else [(landmarks, appearance)]
    readings = {}
    for shift in BENCHMARK_SHIFTS:
        audios = audio_of_shift(shift)
        syncs = [score_track(lm, a, max_offset, models, calibration, appearance=app)
                 for (lm, app), a in zip(tracks, audios if many else [audios])]
        readings[shift] = syncs[main_track_index(syncs)]
    out = []
    for shift, sync in readings.items():
        expected = None if own is None else own - shift
        if expected is not None and abs(expected) > max_offset:
            expected = None
        contexts = {} if expected is None else {k: context_accuracy(sync.dists, expected, k, max_offset) for k in CONTEXTS}
        out.append(ShiftResult(clip=name, corpus=corpus, generated=generated, shift=shift, offset=int(sync.offset_frames),
                               expected=expected, unshifted=int(readings[0].offset_frames),
                               confidence=float(sync.confidence), reliable=bool(sync.reliable),
                               context_correct=contexts))
    return out


def heldout_results(footage, models, calibration, include_dropped=False):
    from syncnet_fcn.landmark_training import aligned_audio, usable_tracks
    from syncnet_fcn.media import shift_audio

    results = []
    for t in usable_tracks(footage, "validation", include_dropped):
        audio = aligned_audio(t)
        group = t["name"].split("/")[1].split("__")[0]
        results += read_copies(t["name"], t["landmarks"], t["appearance"], lambda s, a=audio: shift_audio(a, s), 0,
                               models, calibration, group)
    return results


def benchmark_clip_results(cache: Path, clips_dir: Path, models, calibration):
    from syncnet_fcn.landmark.reading import MIN_TRACK_FRAMES
    from syncnet_fcn.landmark.training import cached_tracks
    from syncnet_fcn.media import load_audio, shift_audio, track_audio
    from syncnet_fcn.landmark.mouth import compact_landmarks, mouth_appearance

    results = []
    for entry in json.loads((clips_dir / "manifest.json").read_text()):
        path = clips_dir / entry["file"]
        generated = entry.get("real_or_generated") != "real"
        tracks = [t for t in cached_tracks(path, cache, False) if len(t["landmarks"]) >= MIN_TRACK_FRAMES] if path.exists() else []
        if not tracks:
            continue
        audio = load_audio(path)
        lms = [compact_landmarks(t["landmarks"]) for t in tracks]
        apps = [mouth_appearance(t["mouth_images"], np.isfinite(t["landmarks"]).all(axis=(1, 2))) for t in tracks]

        def audio_of_shift(shift, audio=audio, tracks=tracks):
            shifted = shift_audio(audio, shift)
            return [track_audio(shifted, t["start"], len(t["landmarks"])) for t in tracks]

        own = 0 if generated and corpus_of(entry["file"]) != "generated" else own_offset(entry["file"])
        results += read_copies(entry["file"], lms, apps, audio_of_shift, own, models, calibration,
                               "generated" if generated else corpus_of(entry["file"]), generated)
    return results


def main(argv=None) -> int:
    from syncnet_fcn.landmark.models import CALIBRATION_PATH, MODEL_PATH, LandmarkModels
    from syncnet_fcn.landmark_training import prepare_footage

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, required=True, help="landmark cache (as for landmark_training)")
    p.add_argument("--model", type=Path, default=MODEL_PATH)
    p.add_argument("--calibration", type=Path, default=CALIBRATION_PATH)
    p.add_argument("--train-root", type=Path, default=SHARED / "train")
    p.add_argument("--clips-dir", type=Path, default=SHARED / "clips")
    p.add_argument("--benchmark-clips", action="store_true", help="the evaluation clips instead (from the cache)")
    p.add_argument("--include-dropped", action="store_true",
                   help="held-out clips the sync check dropped too, as published (they may not be in sync)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    models = LandmarkModels.load(args.model)
    calibration = json.loads(args.calibration.read_text())
    started = time.perf_counter()
    if args.benchmark_clips:
        results = benchmark_clip_results(args.cache, args.clips_dir, models, calibration)
    else:
        footage = prepare_footage(args.train_root, args.clips_dir, args.cache)
        results = heldout_results(footage, models, calibration, args.include_dropped)
    summary = benchmark_summary(results)
    print(f"model {args.model.name}, calibration {args.calibration.name}: {len(results)} copies of "
          f"{len({r.clip for r in results})} clips in {time.perf_counter() - started:.0f} s")
    print(format_summary(summary))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "model": str(args.model),
                                          "results": results_to_json(results)}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
