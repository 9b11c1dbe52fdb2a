"""Results: per-track readings, the report of one engine on one video, and its writers (JSON, table)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import SIGN_CONVENTION, TIMELINE_FPS, __version__
from .track_sync import TrackSync
from .tracking import FaceTrack

# A speaking segment shorter than this is noise; gaps shorter than this are bridged.
MIN_SEGMENT_FRAMES = 5
# The terminal table lists at most this many speaking segments; the JSON has them all.
TABLE_TURNS = 20


@dataclass
class TrackResult:
    track: FaceTrack
    sync: TrackSync
    speaking_threshold: float
    #: per track frame: this face is the voice heard (:func:`attribute_speakers`); None: judged alone
    speaking: np.ndarray | None = field(default=None, repr=False)
    #: the offset at which ``speaking`` was judged, when not the track's own (:func:`attribute_speakers`)
    speaking_offset: int | None = None

    @property
    def track_id(self) -> int:
        return self.track.track_id

    def speaking_frames(self) -> np.ndarray:
        """Per track frame, whether this face is the voice heard."""
        if self.speaking is not None:
            return self.speaking
        return np.asarray(self.sync.per_frame_confidence, dtype=float) > self.speaking_threshold

    def speaking_segments(self) -> list[dict]:
        """Frames where this face's sync confidence says it is the voice heard, as time segments."""
        active = self.speaking_frames()
        segments = []
        for start, end in _runs(active, MIN_SEGMENT_FRAMES):
            first = self.track.start_frame + start
            last = self.track.start_frame + end
            segments.append(
                {
                    "start_frame": int(first),
                    "end_frame": int(last),
                    "start_s": round(first / TIMELINE_FPS, 3),
                    "end_s": round((last + 1) / TIMELINE_FPS, 3),
                }
            )
        return segments

    def to_dict(self, full: bool = False) -> dict:
        sync = self.sync
        out = {
            "track_id": self.track.track_id,
            "start_frame": int(self.track.start_frame),
            "end_frame": int(self.track.end_frame),
            "n_frames": int(self.track.n_frames),
            "bbox": self.track.bbox_summary(),
            "offset_frames": int(sync.offset_frames),
            "offset_seconds": round(sync.offset_frames / TIMELINE_FPS, 3),
            "confidence": _num(sync.confidence),
            "min_dist": _num(sync.min_dist),
            "reliable": bool(sync.reliable),
            "note": sync.note,
            "per_frame_confidence": [_num(v) for v in np.asarray(sync.per_frame_confidence, dtype=float)],
            "offset_curve": {
                "offsets": [int(o) for o in sync.offsets],
                "mean_dist": [_num(v) for v in np.asarray(sync.offset_curve, dtype=float)],
            },
            "speaking_segments": self.speaking_segments(),
            "speaking_judged_at_offset": int(sync.offset_frames if self.speaking_offset is None else self.speaking_offset),
        }
        if full:
            out["boxes"] = [[round(float(v), 1) for v in box] for box in self.track.boxes]
        return out


@dataclass
class SyncReport:
    """One engine's reading of one video: every face track, and the main one (highest confidence)."""

    video: str
    engine: str
    weights: str | None
    duration_s: float
    max_offset: int
    tracks: list[TrackResult]
    timings: dict = field(default_factory=dict)
    warning: str | None = None  # e.g. the file is cut short: what was analysed is less than it declares

    @property
    def main(self) -> TrackResult | None:
        if not self.tracks:
            return None
        return max(self.tracks, key=lambda t: main_track_rank(t.sync))

    @property
    def offset_frames(self) -> int | None:
        return None if self.main is None else int(self.main.sync.offset_frames)

    @property
    def confidence(self) -> float | None:
        return None if self.main is None else self.main.sync.confidence

    @property
    def min_dist(self) -> float | None:
        return None if self.main is None else self.main.sync.min_dist

    def to_dict(self, full: bool = False) -> dict:
        main = self.main
        return {
            "video": self.video,
            "engine": self.engine,
            "weights": self.weights,
            "fps": TIMELINE_FPS,
            "duration_s": round(self.duration_s, 3),
            "sign_convention": SIGN_CONVENTION,
            "max_offset": self.max_offset,
            "offset_frames": self.offset_frames,
            "offset_seconds": None if main is None else round(self.offset_frames / TIMELINE_FPS, 3),
            "confidence": None if main is None else _num(main.sync.confidence),
            "min_dist": None if main is None else _num(main.sync.min_dist),
            "reliable": bool(main.sync.reliable) if main is not None else False,
            "main_track_id": None if main is None else main.track_id,
            "tracks": [t.to_dict(full=full) for t in self.tracks],
            "timings": {k: round(float(v), 3) for k, v in self.timings.items()},
            "warning": self.warning,
            "version": __version__,
        }

    def to_json(self, full: bool = False, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(full=full), indent=indent)

    def format_table(self) -> str:
        """A readable summary for the terminal."""
        lines = [
            f"{Path(self.video).name} · {self.duration_s:.2f} s · engine {self.engine}"
            + (f" ({self.weights})" if self.weights else "")
        ]
        if self.warning:
            lines.append(f"warning: {self.warning}")
        header = (f"{'track':>5}  {'frames':>13}  {'face px':>7}  {'offset':>6}  {'ms':>6}  {'conf':>6}  "
                  f"{'min dist':>8}  {'speaks':>6}  reliable")
        lines += [header, "-" * len(header)]
        for t in self.tracks:
            s = t.sync
            speaks = float(np.mean(t.speaking_frames())) if t.track.n_frames else 0.0
            lines.append(
                f"{t.track_id:>5}  {t.track.start_frame:>6}-{t.track.end_frame:<6}  "
                f"{t.track.bbox_summary()['size']:>7.0f}  {s.offset_frames:>+6d}  "
                f"{s.offset_frames * 1000 // TIMELINE_FPS:>+6d}  {_fmt(s.confidence):>6}  {_fmt(s.min_dist):>8}  "
                f"{speaks:>6.0%}  {'yes' if s.reliable else 'no'}" + (f"  ({s.note})" if s.note else "")
            )
        main = self.main
        if main is not None:
            lines.append("")
            lines.append(f"main track {main.track_id}: {describe_reading(main.sync)}")
        if len(self.tracks) > 1:
            lines += self._format_turns()
        return "\n".join(lines)

    def _format_turns(self, most: int = TABLE_TURNS) -> list[str]:
        """"Who speaks when" for the terminal: the speaking segments of all faces in time order."""
        turns = sorted((seg["start_s"], seg["end_s"], t.track_id) for t in self.tracks for seg in t.speaking_segments())
        if not turns:
            return ["", "who speaks when: no face is marked speaking anywhere"]
        lines = ["", "who speaks when:"]
        lines += [f"  {_clock(start):>9} – {_clock(end):<9}  track {track_id}" for start, end, track_id in turns[:most]]
        if len(turns) > most:
            lines.append(f"  … {len(turns) - most} more segments (all of them: --json, speaking_segments)")
        return lines


def attribute_speakers(results: list[TrackResult], relative_threshold: float | None,
                       judge_at: Callable[[TrackSync, int], np.ndarray | None] | None = None) -> None:
    """Decide who speaks when, frame by frame, over all of a video's face tracks (sets ``speaking``).

    A face alone on screen is the voice heard where its per-frame confidence clears the engine's
    ``speaking_threshold`` (it beats 95 % of foreign voices). Where several faces are on screen the
    question is which of them matches the sound, which needs less evidence than whether a lone face
    does: the face with the highest per-frame confidence is the one heard if it clears
    ``relative_threshold`` (it beats a typical foreign voice); the others are not, unless they clear
    ``speaking_threshold`` themselves. That lower bar presumes the voice belongs to one of the faces,
    so it is used only when the video's main face reads reliably: with an off-screen narrator no face
    does, and the best of several faces would beat a typical foreign voice on most frames by chance.
    Without a relative threshold, or a reliable main face, every face is judged alone.

    All faces share one soundtrack, so one audio-video offset is the rule. A face heard only part of
    the time often gets no reliable offset of its own, and its per-frame confidence judged at a wrong
    offset says nothing; with ``judge_at`` (the engine's ``per_frame_confidence_at``), such a face is
    judged at the offset of the main face instead, when the two differ by more than a frame.
    """
    for result in results:
        result.speaking, result.speaking_offset = None, None
    if relative_threshold is None or len(results) < 2:
        return
    main = max(results, key=lambda r: main_track_rank(r.sync))
    if not main.sync.reliable:
        return
    shared = main.sync.offset_frames
    per_frame = {}
    for result in results:
        values = np.asarray(result.sync.per_frame_confidence, dtype=float)
        if (judge_at is not None and result is not main and not result.sync.reliable
                and abs(result.sync.offset_frames - shared) > 1):
            rejudged = judge_at(result.sync, shared)
            if rejudged is not None:
                values, result.speaking_offset = np.asarray(rejudged, dtype=float), int(shared)
        per_frame[result.track_id] = np.nan_to_num(values, nan=-np.inf)
    # each face against the faces on screen with it, over its own span only: a long stream with
    # hundreds of tracks never needs a (tracks x frames) array
    for result in results:
        own = per_frame[result.track_id]
        first, stop = result.track.start_frame, result.track.start_frame + len(own)
        rivals = np.full(len(own), -np.inf)  # the best other face's confidence, frame by frame
        company = np.zeros(len(own), bool)  # another face is on screen
        for other in results:
            theirs = per_frame[other.track_id]
            lo, hi = max(first, other.track.start_frame), min(stop, other.track.start_frame + len(theirs))
            if other is result or lo >= hi:
                continue
            span = theirs[lo - other.track.start_frame : hi - other.track.start_frame]
            rivals[lo - first : hi - first] = np.maximum(rivals[lo - first : hi - first], span)
            company[lo - first : hi - first] |= np.isfinite(span)
        alone = own > result.speaking_threshold
        chosen = company & (own > rivals) & (own > relative_threshold)
        result.speaking = alone | chosen


def _clock(seconds: float) -> str:
    """``75.4`` → ``"1:15.40"``; hours when needed (``"5:00:00.00"``)."""
    centis = int(round(float(seconds) * 100))  # round once, so 3599.999 s reads 1:00:00.00, not 59:60.00
    minutes, centis = divmod(centis, 6000)
    hours, minutes = divmod(minutes, 60)
    secs = f"{centis // 100:02d}.{centis % 100:02d}"
    return f"{hours}:{minutes:02d}:{secs}" if hours else f"{minutes}:{secs}"


def describe_reading(sync) -> str:
    """The verdict on one track in words: the offset when the reading is reliable; otherwise a plain
    "no reliable sync", so that a best guess is not taken for an answer."""
    if sync.reliable:
        return describe_offset(sync.offset_frames)
    if sync.min_dist is None:
        return "no reliable sync reading (see the note above)"
    return f"no reliable sync reading (best guess, not to be acted on: {describe_offset(sync.offset_frames)})"


def describe_offset(offset_frames: int) -> str:
    """Words for an offset in the SyncNet convention (positive = audio early)."""
    ms = abs(offset_frames) * 1000 // TIMELINE_FPS
    if offset_frames == 0:
        return "audio and video are in sync (0 frames)"
    frames = f"{abs(offset_frames)} frame{'s' if abs(offset_frames) != 1 else ''}"
    if offset_frames > 0:
        return f"audio is {ms} ms early (leads the video by {frames})"
    return f"audio is {ms} ms late (lags the video by {frames})"


def _runs(active: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """Inclusive (start, end) index runs of True, bridging short gaps and dropping short runs."""
    runs = []
    idx = np.flatnonzero(active)
    if idx.size == 0:
        return runs
    start = prev = int(idx[0])
    for i in idx[1:]:
        i = int(i)
        if i - prev > min_len:
            runs.append((start, prev))
            start = i
        prev = i
    runs.append((start, prev))
    return [(a, b) for a, b in runs if b - a + 1 >= min_len]


def main_track_rank(sync: TrackSync) -> tuple[bool, float]:
    """Which track a report calls main: reliable first, then the highest confidence."""
    return bool(sync.reliable), _finite(sync.confidence)


def _finite(x) -> float:
    return float(x) if x is not None and math.isfinite(x) else -math.inf


def _num(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return round(x, 4) if math.isfinite(x) else None


def _fmt(x) -> str:
    return "-" if x is None or not math.isfinite(float(x)) else f"{float(x):.2f}"
