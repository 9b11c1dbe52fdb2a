"""Measuring the landmark engine's calibration on real clips (``python -m syncnet_fcn.landmark calibrate``).

The bias is the lead of lips over sound (sub-frame reading minus the true offset of in-sync clips);
the thresholds come from faces paired with other clips' audio. The result is stored as
``data/landmark_calibration.json``, which :func:`~syncnet_fcn.landmark.models.load_calibration` reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..scoring import offset_axis
from .models import LandmarkModels, load_models
from .reading import MIN_TRACK_FRAMES, frame_scores, score_track, window_distances
from .training import cached_tracks


def measure_bias_error(landmarks: np.ndarray, audio: np.ndarray, own_offset: int, max_offset: int = 15,
                       models: LandmarkModels | None = None, mouth_images: np.ndarray | None = None) -> float:
    """Sub-frame reading minus the true offset of one in-sync track, before any bias correction."""
    from ..evaluation import subframe_minimum

    scores, _ = frame_scores(landmarks, audio, max_offset, models or load_models(), 0.0, mouth_images)
    curve = window_distances(scores).mean(axis=0)[::-1]  # offsets ascending
    return subframe_minimum(curve, offset_axis(max_offset)) - own_offset


def calibrate(samples: dict, max_offset: int = 15, models: LandmarkModels | None = None) -> dict:
    """Measure the lip lead and the reliability threshold.

    ``samples`` maps clip name → ``(landmarks, mouth images, track audio, own offset or None)`` of real
    clips. The
    bias is the robust median of (sub-frame reading − own offset) over clips with a known own offset,
    checked by leaving each corpus out. The threshold is the largest confidence seen when a face is
    paired with another clip's audio (every clip's face with the audio of the next clip of another
    corpus, repeated or cut to length), so that such pairs read unreliable; the true pairs'
    confidences are stored beside it.
    """
    from ..evaluation import (
        IN_SYNC_CORPORA,
        corpus_of,
        foreign_audio,
        leave_one_corpus_out,
        robust_bias,
        wrong_audio_partner,
        wrong_pair_thresholds,
    )

    models = models or load_models()
    # evidence: clips whose own offset is documented or that come from a research corpus in sync
    errors = {
        name: measure_bias_error(lm, audio, own, max_offset, models, images)
        for name, (lm, images, audio, own) in samples.items()
        if own is not None and (corpus_of(name) in IN_SYNC_CORPORA or corpus_of(name) == "syncnet_example")
    }
    loco = leave_one_corpus_out(errors)
    bias = robust_bias(list(errors.values()))
    base = {"bias_frames": bias, "reliable_confidence": -np.inf}
    names = sorted(samples)
    true_conf, wrong_conf, wrong_frames = {}, {}, []
    for i, name in enumerate(names):
        lm, images, audio, _ = samples[name]
        true_conf[name] = float(score_track(lm, audio, max_offset, models, base, images).confidence)
        # the next clip of another corpus (syncnetfcn_test_offset* is syncnet_example, audio delayed)
        other = names[wrong_audio_partner(names, i)]
        foreign = foreign_audio(samples[other][2], len(audio))
        wrong = score_track(lm, foreign, max_offset, models, base, images)
        wrong_conf[f"{name} + audio of {other}"] = float(wrong.confidence)
        wrong_frames.append(wrong.per_frame_confidence)
    thresholds = wrong_pair_thresholds(true_conf, wrong_conf, wrong_frames)
    return {
        "bias_frames": bias,
        "reliable_confidence": thresholds["reliable_confidence"],
        "speaking_threshold": thresholds["speaking_threshold"],
        "relative_speaking_threshold": thresholds["relative_speaking_threshold"],
        "bias_measurement": {
            "how": "sub-frame minimum of the offset curve (parabola through the best offset and its "
                   "neighbours) minus the clip's own offset, on unshifted real clips with a known own "
                   "offset; bias = median after dropping errors more than 3 frames from the median",
            "errors": errors,
            "leave_one_corpus_out": loco,
        },
        "threshold_measurement": {
            "how": "confidence of each clip's face with the audio of the next clip (by name) of another "
                   "corpus (repeated or cut to the "
                   "track's length); reliable_confidence = the largest; speaking_threshold = 95th "
                   "percentile of those pairs' per-frame confidences; relative_speaking_threshold = their "
                   "median",
            "wrong_audio": wrong_conf,
            "true_audio": true_conf,
            "true_pairs_above_threshold": thresholds["true_pairs_above_threshold"],
        },
    }



def calibration_samples(clips_dir: Path, cache: Path | None = None, log=print) -> dict:
    """``{clip: (landmarks, mouth images, audio, own offset)}`` of the real clips of a ``manifest.json``
    folder (longest face track of each)."""
    from ..errors import SyncNetError
    from ..evaluation import own_offset

    manifest = json.loads((clips_dir / "manifest.json").read_text())
    samples = {}
    for entry in manifest:
        path = clips_dir / entry["file"]
        if entry.get("real_or_generated") != "real" or not path.exists():
            continue
        try:
            tracks = cached_tracks(path, cache, whole_frame=False)
        except SyncNetError as exc:
            log(f"{entry['file']}: {exc.message}")
            continue
        tracks = [t for t in tracks if len(t["landmarks"]) >= MIN_TRACK_FRAMES]
        if tracks:
            t = max(tracks, key=lambda t: len(t["landmarks"]))
            samples[entry["file"]] = (t["landmarks"], t["mouth_images"], t["audio"], own_offset(entry["file"]))
    return samples

