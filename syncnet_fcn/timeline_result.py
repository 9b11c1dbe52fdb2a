"""The result of a timeline run: people, face tracks, segments, per-window offsets and offset jumps.

A run produces one plain record per window (:mod:`syncnet_fcn.timeline`); :func:`build_timeline`
joins them into a :class:`Timeline`: neighbouring window segments of the same speaker and kind merge
into one, and the per-window sync readings are scanned for jumps. The same records, read back from a
checkpoint, give the same timeline, so a resumed run's result equals an uninterrupted one's.
Writers (:mod:`syncnet_fcn.writers`) turn a :class:`Timeline` into JSON, SRT, VTT, RTTM or CSV.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Segments of one speaker and kind closer than this merge (window edges, short dips of the reading).
MERGE_GAP_S = 0.2
# An offset change of at least this many frames between reliable windows, confirmed by the next
# reliable window, is a jump (the engines' readings wander by ±1 frame).
JUMP_FRAMES = 2


@dataclass
class Timeline:
    video: str
    duration_s: float
    settings: dict
    people: list[dict]
    tracks: list[dict]
    segments: list[dict]
    windows: list[dict]
    jumps: list[dict]
    complete: bool = True
    timings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "video": self.video,
            "duration_s": round(self.duration_s, 3),
            "complete": self.complete,
            "settings": self.settings,
            "people": self.people,
            "tracks": self.tracks,
            "segments": self.segments,
            "windows": self.windows,
            "jumps": self.jumps,
            "timings": self.timings,
        }

    def voice_segments(self) -> list[dict]:
        """Segments where someone talks or sings (what diarisation scorers compare)."""
        return [s for s in self.segments if s["speaker"] is not None and s["type"] in ("talk", "sing")]


def build_timeline(video: str, duration_s: float, settings: dict, records: list[dict], complete: bool = True,
                   enrolled: list[str] = (), timings: dict | None = None) -> Timeline:
    tracks = [track for record in records for track in record["tracks"]]
    segments = merge_segments([s for record in records for s in record["segments"]])
    windows = [record["reading"] for record in records]
    labels = sorted({t["label"] for t in tracks} | {s["speaker"] for s in segments if s["speaker"]},
                    key=_label_order)
    people = []
    for label in labels:
        spoken = [s for s in segments if s["speaker"] == label and s["type"] in ("talk", "sing")]
        people.append({
            "label": label,
            "enrolled": label in enrolled,
            "tracks": sum(1 for t in tracks if t["label"] == label),
            "on_screen_s": round(sum(t["end"] - t["start"] for t in tracks if t["label"] == label), 2),
            "speaking_s": round(sum(s["end"] - s["start"] for s in spoken), 2),
        })
    return Timeline(video=video, duration_s=duration_s, settings=settings, people=people, tracks=tracks,
                    segments=segments, windows=windows, jumps=find_jumps(windows), complete=complete,
                    timings=timings or {})


def _label_order(label: str):
    unknown_cluster = label.startswith("P") and label[1:].isdigit()
    return (label == "unknown", unknown_cluster, int(label[1:]) if unknown_cluster else 0, label)


def merge_segments(segments: list[dict]) -> list[dict]:
    """Join consecutive segments of one speaker and kind separated by at most :data:`MERGE_GAP_S`.

    A merged segment's confidence is the duration-weighted mean; its offset that of its longest part.
    """
    merged: list[dict] = []
    longest: list[float] = []
    for seg in sorted(segments, key=lambda s: s["start"]):
        last = merged[-1] if merged else None
        if (last is not None and last["speaker"] == seg["speaker"] and last["type"] == seg["type"]
                and seg["start"] - last["end"] <= MERGE_GAP_S):
            a, b = last["end"] - last["start"], seg["end"] - seg["start"]
            if last["confidence"] is not None and seg["confidence"] is not None and a + b > 0:
                last["confidence"] = round((last["confidence"] * a + seg["confidence"] * b) / (a + b), 3)
            elif last["confidence"] is None:
                last["confidence"] = seg["confidence"]
            if b > longest[-1] and seg["offset_frames"] is not None:
                last["offset_frames"], longest[-1] = seg["offset_frames"], b
            last["end"] = seg["end"]
            last["source"] = last["source"] if last["source"] == seg["source"] else "mixed"
        else:
            merged.append(dict(seg))
            longest.append(seg["end"] - seg["start"] if seg["offset_frames"] is not None else 0.0)
    return merged


def find_jumps(windows: list[dict], min_change: int = JUMP_FRAMES) -> list[dict]:
    """Where the reliable per-window offset changes by ``min_change`` frames or more and stays there.

    Readings are compared speaker by speaker: faces from different sources (a studio, a remote guest)
    may carry offsets of their own, while a jump in the recording's alignment shows in each speaker's
    series. The jump is placed at the start of the first window that reads the new offset; ``after_s``
    is where the old offset was last read. A change is kept when the speaker's next reading confirms
    it (or when there is none yet).
    """
    by_speaker: dict[str, list[dict]] = {}
    for w in windows:
        if w.get("reliable") and w.get("offset_frames") is not None and w.get("speaker") is not None:
            by_speaker.setdefault(w["speaker"], []).append(w)
    jumps = []
    for speaker, series in by_speaker.items():
        for k in range(1, len(series)):
            before, now = series[k - 1], series[k]
            if abs(now["offset_frames"] - before["offset_frames"]) < min_change:
                continue
            after = series[k + 1] if k + 1 < len(series) else None
            if after is not None and (abs(after["offset_frames"] - now["offset_frames"]) > 1
                                      or abs(after["offset_frames"] - before["offset_frames"]) < min_change):
                continue  # a single odd window, or a wander around the old offset: not a lasting change
            jumps.append({"time_s": now["start"], "after_s": before["end"], "speaker": speaker,
                          "from_frames": before["offset_frames"], "to_frames": now["offset_frames"]})
    jumps.sort(key=lambda j: j["time_s"])
    kept: list[dict] = []
    for jump in jumps:  # one jump seen in several speakers' series is reported once, where first seen
        if kept and jump["after_s"] < kept[-1]["time_s"] and jump["to_frames"] - jump["from_frames"] == \
                kept[-1]["to_frames"] - kept[-1]["from_frames"]:
            continue
        kept.append(jump)
    return kept


__all__ = ["Timeline", "build_timeline", "merge_segments", "find_jumps"]
