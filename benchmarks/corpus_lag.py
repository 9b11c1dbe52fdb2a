"""How far each corpus's sound sits from its lips, measured without any trained model.

A sync model trained on a corpus learns that corpus's own offset as "in sync". This script measures
it model-free: per clip, the inner-lip opening (face mesh, in units of the eye-corner distance)
against the speech-band log energy per 25 fps frame, both standardised, cross-correlated at lags of
±8 frames; the curves are summed over the corpus and the peak is located to a sub-frame with a
parabola. The number is in the SyncNet convention (delaying the audio by S frames lowers it by S) and
has this method's own bias, so compare corpora with each other: the in-sync evaluation clips are the
reference.

    python benchmarks/corpus_lag.py --cache /tmp/landmarks ../shared/train/lrc_ar ../shared/train/grid_s1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from syncnet_fcn import AUDIO_SAMPLE_RATE, SAMPLES_PER_FRAME  # noqa: E402
from syncnet_fcn.datasets import MIN_TRACK_FRAMES  # noqa: E402
from syncnet_fcn.landmark.audio_features import SPEECH_BAND_HZ  # noqa: E402
from syncnet_fcn.landmark.mouth import EYE_OUTER_CORNERS  # noqa: E402

CLIPS = REPO.parent / "shared" / "clips"
MAX_LAG = 8
# the middle of the inner lips, upper and lower (mediapipe face mesh)
INNER_LIP_MIDDLE = (13, 14)


def lip_opening(landmarks: np.ndarray) -> np.ndarray:
    gap = np.linalg.norm(landmarks[:, INNER_LIP_MIDDLE[0], :2] - landmarks[:, INNER_LIP_MIDDLE[1], :2], axis=1)
    eyes = np.linalg.norm(landmarks[:, EYE_OUTER_CORNERS[0], :2] - landmarks[:, EYE_OUTER_CORNERS[1], :2], axis=1)
    return gap / eyes


def speech_energy(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """Log energy of the 300–3000 Hz band in each frame's 640 samples (silence past the end)."""
    samples = np.zeros(n_frames * SAMPLES_PER_FRAME, dtype=np.float64)
    usable = min(len(audio), len(samples))
    samples[:usable] = audio[:usable]
    frames = samples.reshape(n_frames, SAMPLES_PER_FRAME) * np.hanning(SAMPLES_PER_FRAME)
    spectrum = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    hz = np.fft.rfftfreq(SAMPLES_PER_FRAME, 1 / AUDIO_SAMPLE_RATE)
    band = (hz > SPEECH_BAND_HZ[0]) & (hz < SPEECH_BAND_HZ[1])
    return np.log(spectrum[:, band].sum(axis=1) + 1e-6)


def lag_curve(opening: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Mean product of the standardised series at lags −MAX_LAG…MAX_LAG (energy frame i + lag ↔ lips i)."""
    o = (opening - opening.mean()) / (opening.std() + 1e-9)
    e = (energy - energy.mean()) / (energy.std() + 1e-9)
    n = len(o)
    out = np.empty(2 * MAX_LAG + 1)
    for k, lag in enumerate(range(-MAX_LAG, MAX_LAG + 1)):
        lips = np.arange(max(0, -lag), min(n, n - lag))
        out[k] = np.mean(o[lips] * e[lips + lag])
    return out


def corpus_reading(tracks: list[dict]) -> tuple[float, int]:
    """``(sub-frame offset in the SyncNet convention, tracks used)`` of the summed lag curves."""
    total, used = np.zeros(2 * MAX_LAG + 1), 0
    for track in tracks:
        lm = track["landmarks"]
        if len(lm) < MIN_TRACK_FRAMES or not np.isfinite(lm).all():
            continue  # a lost mesh frame would break the series
        total += lag_curve(lip_opening(lm), speech_energy(track["audio"], len(lm)))
        used += 1
    if not used:
        return float("nan"), 0
    k = int(np.clip(np.argmax(total), 1, len(total) - 2))
    y0, y1, y2 = total[k - 1 : k + 2]
    peak_lag = k - MAX_LAG + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
    # the sound peaking `lag` frames after the lips reads −lag (SyncNet: delayed audio lowers the reading)
    return float(-peak_lag), used


def main(argv=None) -> int:
    from syncnet_fcn.landmark.training import cached_tracks
    from syncnet_fcn.evaluation import own_offset
    from syncnet_fcn.media import videos_in

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="*", type=Path, help="folders of training videos (face crops or full frame)")
    p.add_argument("--tracked", nargs="*", type=Path, default=[], help="folders whose faces must be detected")
    p.add_argument("--cache", type=Path, default=None, help="keep the face-mesh landmarks here")
    p.add_argument("--clips-dir", type=Path, default=CLIPS, help="reference: in-sync clips of this manifest")
    args = p.parse_args(argv)

    results = {}
    manifest = json.loads((args.clips_dir / "manifest.json").read_text())
    in_sync = [args.clips_dir / e["file"] for e in manifest
               if e.get("real_or_generated") == "real" and own_offset(e["file"]) == 0]
    groups = [("in-sync evaluation clips", in_sync, False)]
    groups += [(f.name, videos_in(f), True) for f in args.folders]
    groups += [(f.name, videos_in(f), False) for f in args.tracked]
    for name, videos, whole_frame in groups:
        tracks = [t for v in videos for t in cached_tracks(v, args.cache, whole_frame)[:1]]
        reading, used = corpus_reading(tracks)
        results[name] = {"reading_frames": round(reading, 2), "tracks": used}
    reference = results["in-sync evaluation clips"]["reading_frames"]
    for name, r in results.items():
        r["relative_to_in_sync_clips"] = round(r["reading_frames"] - reference, 2)
        print(f"{name:28s} {r['tracks']:5d} tracks  reading {r['reading_frames']:+.2f}  "
              f"relative {r['relative_to_in_sync_clips']:+.2f} frames")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
