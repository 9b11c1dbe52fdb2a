"""Who is heard in one window of a long recording, frame by frame, and the window's record.

Given the window's face readings (one :class:`~syncnet_fcn.report.TrackResult` per face piece, with
its identity label) and the sound kind of each frame, :class:`WindowSpeakers` decides who is heard:
the face the sync engine says is speaking (the most confident one where several are); where a voice
is heard and no face speaks, :meth:`WindowSpeakers.name_voices` asks the voice gallery (after
teaching it the voices the lips confirmed in this window). :meth:`WindowSpeakers.record` gives the
plain record the timeline keeps: face tracks, segments and the window's offset reading.
"""

from __future__ import annotations

import numpy as np

from . import SAMPLES_PER_FRAME, TIMELINE_FPS
from .report import TrackResult, _runs
from .sound_activity import VOICE_KINDS

#: lip-confirmed speech at least this long teaches the speaker's voice
VOICE_LEARN_FRAMES = 50
#: at most this many stretches per voice are learnt (the mean settles; later ones only cost time)
VOICE_LEARN_MAX = 20
#: an unrecognised voice shorter than this between two stretches of one lip-confirmed speaker is theirs
BRIDGE_FRAMES = 75


class WindowSpeakers:
    """Frames ``first .. first+n-1``: who is heard on each, from lips first, then from voices."""

    def __init__(self, first: int, kinds: np.ndarray, results: list[TrackResult], labels: list[str]):
        n = len(kinds)
        self.first, self.results, self.labels = first, results, labels
        # who is heard, frame by frame: the speaking face with the highest per-frame confidence
        heard = np.full(n, -1)
        heard_conf = np.full(n, -np.inf)
        for k, result in enumerate(results):
            lo = result.track.start_frame - first
            conf = np.nan_to_num(np.asarray(result.sync.per_frame_confidence, float), nan=-np.inf)
            speaking = result.speaking_frames()
            for i in np.flatnonzero(speaking):
                if conf[i] > heard_conf[lo + i]:
                    heard[lo + i], heard_conf[lo + i] = k, conf[i]
        voiced = np.isin(kinds, VOICE_KINDS)
        speakers = np.full(n, None, dtype=object)
        confidence = np.full(n, np.nan)
        offsets = np.full(n, None, dtype=object)
        source = np.full(n, None, dtype=object)
        on_screen = heard >= 0
        for i in np.flatnonzero(on_screen):
            speakers[i], confidence[i] = labels[heard[i]], heard_conf[i]
            offsets[i], source[i] = int(results[heard[i]].sync.offset_frames), "lips"
        kinds = np.where(on_screen & ~voiced, np.where(kinds == "music", "sing", "talk"), kinds)

        self.kinds = kinds
        self.heard, self.voiced, self.on_screen = heard, voiced, on_screen
        self.speakers, self.confidence, self.offsets, self.source = speakers, confidence, offsets, source

    def name_voices(self, audio: np.ndarray, voices) -> None:
        """Learn voices where the lips confirm the speaker; name the voice where no face is heard."""
        from .voices import MIN_VOICE_SECONDS, UNKNOWN, embed_voice

        results, labels, heard = self.results, self.labels, self.heard
        speakers, confidence, source = self.speakers, self.confidence, self.source
        off_screen = self.voiced & ~self.on_screen

        for k, result in enumerate(results):
            if voices.voices.get(labels[k], {}).get("count", 0) >= VOICE_LEARN_MAX:
                continue
            for a, b in _runs(heard == k, VOICE_LEARN_FRAMES):
                embedding = embed_voice(audio[a * SAMPLES_PER_FRAME:(b + 1) * SAMPLES_PER_FRAME])
                if embedding is not None:
                    voices.learn(labels[k], embedding)
        for a, b in _runs(off_screen, 1):
            label, similarity = UNKNOWN, np.nan
            if (b - a + 1) >= MIN_VOICE_SECONDS * TIMELINE_FPS:
                embedding = embed_voice(audio[a * SAMPLES_PER_FRAME:(b + 1) * SAMPLES_PER_FRAME])
                if embedding is not None:
                    label, similarity = voices.match(embedding)
            before = speakers[a - 1] if a > 0 and speakers[a - 1] != UNKNOWN else None
            after = speakers[b + 1] if b + 1 < len(speakers) and speakers[b + 1] != UNKNOWN else None
            if label == UNKNOWN and (b - a + 1) < BRIDGE_FRAMES and before is not None and before == after:
                label = before  # a pause in the lip reading inside one person's turn
            elif label == UNKNOWN and (b - a + 1) < MIN_VOICE_SECONDS * TIMELINE_FPS and (before or after):
                label = before or after  # too short to judge by voice: the turn it touches
            speakers[a:b + 1], confidence[a:b + 1], source[a:b + 1] = label, similarity, "voice"

    def record(self, w: int, stop: int) -> dict:
        return {
            "window": w,
            "tracks": [_track_entry(w, k, r, self.labels[k]) for k, r in enumerate(self.results)],
            "segments": _segments(self.first, self.speakers, self.kinds, self.confidence, self.offsets, self.source),
            "reading": _reading(self.first, stop, self.results, self.labels, self.heard),
        }


def _track_entry(w: int, k: int, result: TrackResult, label: str) -> dict:
    sync, track = result.sync, result.track
    return {
        "id": f"w{w}t{k}",
        "label": label,
        "start": round(track.start_frame / TIMELINE_FPS, 2),
        "end": round((track.end_frame + 1) / TIMELINE_FPS, 2),
        "offset_frames": int(sync.offset_frames),
        "confidence": _num(sync.confidence),
        "reliable": bool(sync.reliable),
        "speaking_s": round(float(np.sum(result.speaking_frames())) / TIMELINE_FPS, 2),
        "bbox": track.bbox_summary(),
    }


def _segments(first, speakers, kinds, confidence, offsets, source) -> list[dict]:
    """Runs of one (speaker, kind) within a window; silence is left out."""
    segments = []
    n = len(kinds)
    start = 0
    for i in range(1, n + 1):
        if i < n and speakers[i] == speakers[start] and kinds[i] == kinds[start]:
            continue
        kind = str(kinds[start])
        if kind != "silence" and not (speakers[start] is None and kind in VOICE_KINDS):
            conf = confidence[start:i]
            conf = conf[np.isfinite(conf)]
            offs = [o for o in offsets[start:i] if o is not None]
            segments.append({
                "speaker": speakers[start],
                "start": round((first + start) / TIMELINE_FPS, 2),
                "end": round((first + i) / TIMELINE_FPS, 2),
                "type": kind,
                "confidence": round(float(conf.mean()), 3) if conf.size else None,
                "offset_frames": max(set(offs), key=offs.count) if offs else None,
                "source": source[start],
            })
        start = i
    return segments


def _reading(first, stop, results, labels, heard) -> dict:
    """The window's sync reading: the face heard most in it (else the best-reading face)."""
    reading = {"start": round(first / TIMELINE_FPS, 2), "end": round(stop / TIMELINE_FPS, 2), "speaker": None,
               "offset_frames": None, "confidence": None, "reliable": False, "speaking_s": 0.0}
    if not results:
        return reading
    counts = np.bincount(heard[heard >= 0], minlength=len(results))
    k = int(np.argmax(counts)) if counts.sum() else max(range(len(results)),
                                                          key=lambda j: _num(results[j].sync.confidence) or -1e9)
    sync = results[k].sync
    reading.update(speaker=labels[k], offset_frames=int(sync.offset_frames), confidence=_num(sync.confidence),
                   reliable=bool(sync.reliable and counts.sum() > 0), speaking_s=round(counts[k] / TIMELINE_FPS, 2))
    return reading


def _num(x) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 3)


__all__ = ["WindowSpeakers", "VOICE_LEARN_FRAMES", "VOICE_LEARN_MAX", "BRIDGE_FRAMES"]
