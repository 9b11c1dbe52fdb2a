"""One track's reading by the landmark engine: per-frame scores of every member, combined, turned
into SyncNet's distance matrix and summarised.

Every model's per-frame scores are centred and scaled over the track (so they add fairly) and
averaged (:func:`combine_scores`). A pair whose audio lies beyond the track, or is digital silence,
counts as a typical pair (score 0), as SyncNet's zero padding does. ``dists = −score`` averaged over
5-frame windows (:func:`window_distances`) gives the usual ``(windows, 2*max_offset+1)`` matrix and
:func:`syncnet_fcn.scoring.summarize` the offset, confidence and the rest (:func:`score_track`).
Offsets are corrected by the calibrated lead of lips over sound, applied as a sub-frame audio delay
before scoring.

Confidence is the original's ``median(curve) − min(curve)`` times the square root of the frames with a
face mesh, so that a word and a speech are judged on one scale; ``per_frame_confidence``
(:func:`local_confidence`) asks the same question of the second around each frame.
"""

from __future__ import annotations

import numpy as np

from .. import SAMPLES_PER_FRAME
from ..errors import InvalidArgumentError
from ..track_sync import TrackSync
from .audio_features import heard_frames
from .features import TrackFeatures, visual_features
from .models import LandmarkModels, cca_scores, load_calibration, load_models, net_scores
from .mouth import mouth_features

# Sync distances are judged over 5-frame windows, like SyncNet's.
WINDOW_FRAMES = 5
MIN_TRACK_FRAMES = WINDOW_FRAMES + 1
# Fewer frames with a face mesh (or with sound) than this and nothing can be said.
MIN_MESH_FRAMES = 10


def combine_scores(scores: list[np.ndarray], valid: np.ndarray) -> np.ndarray:
    """Centre and scale each model's scores over the track's real pairs, average them; pairs without
    a mesh or beyond the audio become 0, a typical pair."""
    combined = np.zeros_like(scores[0])
    for s in scores:
        real = s[valid]
        real = real[np.isfinite(real)]
        combined += np.nan_to_num((s - real.mean()) / (real.std() + 1e-9)) if len(real) else 0.0
    combined /= len(scores)
    combined[~valid] = 0.0
    return combined


def window_distances(frame_scores: np.ndarray) -> np.ndarray:
    """``(n, shifts)`` per-frame scores → ``(n - 4, shifts)`` distances: minus the 5-frame window mean."""
    cumulative = np.concatenate([np.zeros((1, frame_scores.shape[1])), np.cumsum(frame_scores, axis=0)])
    return -(cumulative[WINDOW_FRAMES:] - cumulative[:-WINDOW_FRAMES]) / WINDOW_FRAMES



def frame_scores(landmarks: np.ndarray, audio: np.ndarray, max_offset: int, models: LandmarkModels,
                 bias_frames: float = 0.0, mouth_images: np.ndarray | None = None,
                 appearance: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(scores (n, shifts), mesh found (n,))`` for one track, audio delayed by ``bias_frames``."""
    from ..media import shift_audio

    if bias_frames:
        # lips lead sound by a roughly constant amount: delay the audio by it so in-sync reads 0
        audio = shift_audio(np.asarray(audio), float(bias_frames))
    scores, features = [], {}
    lips = mouth_features(landmarks)  # shared by every kind of member
    for member in models.members:
        if member.visual not in features:
            mouth, valid = visual_features(landmarks, mouth_images, member.visual, appearance, lips)
            if features:  # the audio side is the same for every kind of member: computed once
                features[member.visual] = next(iter(features.values())).with_mouth(mouth, valid)
            else:
                features[member.visual] = TrackFeatures.build(mouth, valid, audio, pad=max_offset)
        feats = features[member.visual]
        scores += [cca_scores(member.cca, feats, max_offset), net_scores(member.net, feats, max_offset)]
    return combine_scores(scores, feats.valid), feats.valid


def score_track(landmarks: np.ndarray, audio: np.ndarray, max_offset: int = 15,
                models: LandmarkModels | None = None, calibration: dict | None = None,
                mouth_images: np.ndarray | None = None, appearance: np.ndarray | None = None) -> TrackSync:
    """The reading of one track from its face-mesh landmarks ``(n, 468, 3)`` (or compact,
    :func:`~syncnet_fcn.landmark.mouth.compact_landmarks`), the mouth images ``(n, *MOUTH_ROI_SHAPE)`` that
    :meth:`~syncnet_fcn.landmark.mouth.FaceMeshTracker.process_with_mouth` cut beside them or their
    ``appearance`` features (needed by models that use the mouth image) and its audio."""
    from ..scoring import summarize

    models = models or load_models()
    calibration = calibration or load_calibration()
    n = len(landmarks)
    if n < MIN_TRACK_FRAMES:
        raise InvalidArgumentError(f"the landmark engine needs at least {MIN_TRACK_FRAMES} frames, got {n}")
    mesh_frames, missing = _evidence(landmarks, audio)
    if missing:
        return _no_reading(n, max_offset, missing)
    scores = piecewise_frame_scores(landmarks, audio, max_offset, models, calibration["bias_frames"],
                                    mouth_images, appearance)
    sync = summarize(window_distances(scores), max_offset, n_frames=n)
    sync.per_frame_confidence = local_confidence(sync.dists, n, offset_index=max_offset - sync.offset_frames)
    # The curve is a mean of per-frame scores of unit spread: its best-vs-typical gap shrinks like
    # 1/sqrt(frames) for unrelated sound. Scaled by sqrt(frames), the gap means the same for a word
    # and for a speech: about how many standard errors the best offset beats a typical one.
    gap = sync.confidence
    sync.confidence = float(gap * np.sqrt(mesh_frames))
    threshold = float(calibration["reliable_confidence"])
    sync.extra = {"mesh_frames": mesh_frames, "curve_gap": float(gap), "reliable_confidence": threshold}
    if not np.isfinite(sync.confidence) or sync.confidence < threshold:
        sync.reliable = False
        sync.note = (
            f"no reliable sync: lips and sound agree too little (confidence {sync.confidence:.3f} < "
            f"{threshold:.3f}); this face is not speaking, or the voice is not its own"
        )
    return sync


# A track is scored in pieces of at most this many frames (5 minutes). Scoring holds about 10 kB per frame
# while it runs, so a presenter's track through a 5-hour stream (450,000 frames) in one piece would need
# several GB; in pieces the cost stays that of 5 minutes. Each piece's model scores are standardised on
# the piece itself, which also follows slow changes of light and pose. Every clip the engine was
# calibrated on is shorter than a piece, so for them nothing changes.
SCORING_PIECE_FRAMES = 7500


def piecewise_frame_scores(landmarks: np.ndarray, audio: np.ndarray, max_offset: int, models: LandmarkModels,
                           bias_frames: float = 0.0, mouth_images: np.ndarray | None = None,
                           appearance: np.ndarray | None = None) -> np.ndarray:
    """:func:`frame_scores` of a track of any length, in pieces of at most :data:`SCORING_PIECE_FRAMES`
    frames of about equal length. A piece with too little face mesh or sound scores 0 (typical) throughout."""
    n = len(landmarks)
    pieces = max(1, -(-n // SCORING_PIECE_FRAMES))
    audio = np.asarray(audio)
    scores = np.zeros((n, 2 * max_offset + 1))
    for frames in np.array_split(np.arange(n), pieces):
        first, stop = int(frames[0]), int(frames[-1]) + 1
        piece_audio = audio[first * SAMPLES_PER_FRAME : stop * SAMPLES_PER_FRAME]
        if _evidence(landmarks[first:stop], piece_audio)[1]:
            continue
        scores[first:stop] = frame_scores(
            landmarks[first:stop], piece_audio, max_offset, models, bias_frames,
            None if mouth_images is None else mouth_images[first:stop],
            None if appearance is None else appearance[first:stop],
        )[0]
    return scores


# Frames of distance windows judged together for "is this face the voice heard now": about a second,
# long enough to stand out of noise, short enough to follow turns in a conversation.
LOCAL_WINDOWS = 21


def local_confidence(dists: np.ndarray, n_frames: int, offset_index: int, windows: int = LOCAL_WINDOWS) -> np.ndarray:
    """Per-frame confidence from the ~1 s around each frame: how far the track's offset (column
    ``offset_index`` of ``dists``, or a neighbour) beats a typical one there. Judged at the track's
    offset rather than at a best one found locally: on a second of someone else's voice the best of
    31 offsets beats the median by chance too."""
    windows = max(1, min(windows, len(dists)))
    cumulative = np.concatenate([np.zeros((1, dists.shape[1])), np.cumsum(dists, axis=0)])
    local = (cumulative[windows:] - cumulative[:-windows]) / windows
    near = local[:, max(0, offset_index - 1) : offset_index + 2]
    gain = np.median(local, axis=1) - near.min(axis=1)
    # position p covers windows p … p+windows-1, i.e. frames p … p+windows+3: centred on p + (windows+3)//2
    centres = np.clip(np.arange(n_frames) - (windows + 3) // 2, 0, len(gain) - 1)
    return (gain[centres] * np.sqrt(windows)).astype(np.float32)


def _evidence(landmarks: np.ndarray, audio: np.ndarray) -> tuple[int, str | None]:
    """``(frames with a face mesh, why nothing can be read or None)`` for a track or a piece of one:
    fewer than :data:`MIN_MESH_FRAMES` frames with a mesh, or with sound, say nothing about sync."""
    n = len(landmarks)
    mesh_frames = int(np.isfinite(landmarks).all(axis=(1, 2)).sum())
    if n < MIN_MESH_FRAMES:
        return mesh_frames, (f"the face is seen for only {n} frames ({n / 25:.2f} s); reading sync needs "
                             f"at least {MIN_MESH_FRAMES}")
    if mesh_frames < MIN_MESH_FRAMES:
        return mesh_frames, f"the face mesh found this face on only {mesh_frames} of {n} frames"
    heard = int(heard_frames(audio, n).sum())
    if heard < MIN_MESH_FRAMES:
        return mesh_frames, f"the audio is digital silence on {n - heard} of this track's {n} frames"
    return mesh_frames, None


def _no_reading(n_frames: int, max_offset: int, reason: str) -> TrackSync:
    from ..scoring import offset_axis

    shifts = 2 * max_offset + 1
    return TrackSync(
        offset_frames=0,
        confidence=0.0,
        min_dist=None,
        per_frame_confidence=np.zeros(n_frames, dtype=np.float32),
        offsets=offset_axis(max_offset),
        offset_curve=np.zeros(shifts),
        reliable=False,
        note=f"no reliable sync: {reason}",
        dists=np.zeros((n_frames - WINDOW_FRAMES + 1, shifts)),
    )

