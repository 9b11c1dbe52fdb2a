"""Repair a recording whose offset changes over time: shift its audio stretch by stretch.

    result = fix_per_segment("show.mp4", "show.fixed.mp4")              # timeline run in-process
    result = fix_per_segment("show.mp4", "out.mp4", timeline=json.load(open("show.json")))
    [(s.start_s, s.end_s, s.offset_frames) for s in result.stretches]

The per-window readings of a timeline (:mod:`syncnet_fcn.timeline`) become *stretches* of constant
offset: a stretch ends only where the timeline reports a jump or where two reliable windows agree on an
offset at least :data:`~syncnet_fcn.timeline_result.JUMP_FRAMES` away from the current one (one odd
window is not a change). A stretch starts where its first reliable window does (the first stretch at 0)
and its offset is the median of its reliable windows; unreliable windows take the offset of the
stretch they fall in.

The audio is then moved per stretch at sample level (``offset × rate / 25`` samples, a reading of +B
delayed by B frames, as :func:`syncnet_fcn.repair.fix_video` does for the whole file). Where the delay
grows at a boundary, silence is inserted; where it shrinks, the samples in between are dropped; a few
milliseconds of fade (or crossfade, when samples are dropped) keep the cut from clicking. The audio
keeps its length, so the A/V durations stay the input's; the video is copied packet for packet by
:func:`syncnet_fcn.repair.write_with_audio`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import TIMELINE_FPS
from .errors import InvalidArgumentError, NoFaceError
from .repair import UnreliableReadingError, _check_paths, write_with_audio
from .timeline_result import JUMP_FRAMES

#: fade at a stretch boundary: long enough not to click, short enough not to be heard as a gap
FADE_S = 0.005


@dataclass
class Stretch:
    start_s: float
    end_s: float
    offset_frames: int  # the reading to correct (positive = audio early): the audio is delayed this much
    reliable_windows: int  # windows whose reading set the offset (unreliable ones too under force)

    def to_dict(self) -> dict:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3), "offset_frames": self.offset_frames,
                "reliable_windows": self.reliable_windows}


def plan_stretches(windows: list[dict], jumps: list[dict], duration_s: float, *, force: bool = False) -> list[Stretch]:
    """Stretches of constant offset covering ``[0, duration_s)`` from a timeline's windows and jumps.

    Raises :class:`UnreliableReadingError` when no window is reliable, unless ``force`` (then every
    window with a reading counts), and :class:`NoFaceError` when no window has a reading at all.
    """
    read = sorted((w for w in windows if w.get("offset_frames") is not None), key=lambda w: w["start"])
    if not read:
        raise NoFaceError("no window of the timeline has a sync reading (no face followed long enough)")
    usable = [w for w in read if w.get("reliable")]
    if not usable:
        if not force:
            raise UnreliableReadingError(
                f"none of the {len(read)} windows with a reading is reliable; not fixing. "
                "Give --force to apply the unreliable readings anyway, or --offset N without --per-segment")
        usable = read
    jump_times = [float(j["time_s"]) for j in jumps]

    def reported_jump(previous: dict, window: dict) -> bool:
        return any(previous["start"] < t <= window["start"] + 1e-6 for t in jump_times)

    groups: list[list[dict]] = [[usable[0]]]
    for k in range(1, len(usable)):
        window, current = usable[k], _median(groups[-1])
        following = usable[k + 1] if k + 1 < len(usable) else None
        changed = abs(window["offset_frames"] - current) >= JUMP_FRAMES
        confirmed = following is not None and abs(following["offset_frames"] - window["offset_frames"]) <= 1
        if changed and (confirmed or reported_jump(usable[k - 1], window)):
            groups.append([window])  # the new stretch starts where its first window does
        else:
            groups[-1].append(window)

    stretches = []
    for k, group in enumerate(groups):
        start = 0.0 if k == 0 else float(group[0]["start"])
        end = float(groups[k + 1][0]["start"]) if k + 1 < len(groups) else float(duration_s)
        stretches.append(Stretch(start, end, _median(group), len(group)))
    return stretches


def _median(windows: list[dict]) -> int:
    return int(np.round(np.median([w["offset_frames"] for w in windows])))


def shift_per_stretch(samples: np.ndarray, rate: int, stretches: list[Stretch], fade_s: float = FADE_S) -> np.ndarray:
    """``samples`` (channels, n) with stretch *k* delayed by its offset; same length, silence in.

    Output sample *t* of stretch *k* is input sample ``t - D_k``. At a boundary where the delay grows by
    Δ the first Δ output samples are silence (the input's samples are not played twice); where it shrinks
    the input samples in between are skipped.
    """
    n = samples.shape[1]
    out = np.zeros_like(samples)
    fade = max(1, int(round(fade_s * rate)))
    delays = [int(round(s.offset_frames * rate / TIMELINE_FPS)) for s in stretches]
    edges = [min(n, int(round(s.start_s * rate))) for s in stretches[1:]]
    starts, ends = [0, *edges], [*edges, n]
    for k, (start, end, delay) in enumerate(zip(starts, ends, delays)):
        first = start
        if k > 0 and delay > delays[k - 1]:
            first = min(end, start + delay - delays[k - 1])  # silence where the input would repeat
        out[:, first:end] = _take(samples, first - delay, end - first)
        if k == 0:
            continue
        if delay > delays[k - 1]:  # fade the old stretch out before the silence, the new one in after it
            before = slice(max(0, start - fade), start)
            out[:, before] *= _ramp(before.stop - before.start)[::-1]
            after = slice(first, min(end, first + fade))
            out[:, after] *= _ramp(after.stop - after.start)
        elif delay < delays[k - 1]:  # crossfade from the old stretch's continuation into the new one
            span = slice(start, min(end, start + fade))
            rising = _ramp(span.stop - span.start)
            old = _take(samples, start - delays[k - 1], span.stop - span.start)
            out[:, span] = old * (1 - rising) + out[:, span] * rising
    return out


def _ramp(length: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, length + 2, dtype=np.float32)[1:-1]


def _take(samples: np.ndarray, start: int, length: int) -> np.ndarray:
    """``samples[:, start:start + length]`` with silence where that runs outside the array."""
    piece = np.zeros((samples.shape[0], max(0, length)), samples.dtype)
    lo, hi = max(0, start), min(samples.shape[1], start + length)
    if hi > lo:
        piece[:, lo - start:hi - start] = samples[:, lo:hi]
    return piece


@dataclass
class PerSegmentResult:
    input: Path
    output: Path
    stretches: list[Stretch]
    before: list[dict]  # the input's per-window readings
    after: list[dict] | None  # the output's (None: not re-measured)
    audio_codec: str
    copied_streams: list[str]

    def to_dict(self) -> dict:
        return {"input": self.input.name, "output": self.output.name,
                "stretches": [s.to_dict() for s in self.stretches], "before": self.before, "after": self.after,
                "audio_codec": self.audio_codec, "copied_streams": self.copied_streams}


#: path → a timeline document (``{"duration_s", "windows", "jumps"}``), e.g. a TimelinePipeline run's to_dict()
Measure = Callable[[Path], dict]


def fix_per_segment(video: str | os.PathLike, out: str | os.PathLike, *, timeline: dict | None = None,
                    measure: Measure | None = None, force: bool = False, remeasure: bool = True) -> PerSegmentResult:
    """Write ``out``: ``video`` with its audio moved stretch by stretch; re-measure it per window.

    ``timeline``: the video's timeline document (``syncnet-fcn timeline -o t.json``); without it
    ``measure(video)`` makes one. ``measure`` is also what re-measures ``out`` (skipped when it is
    None or ``remeasure`` is false).
    """
    video, out = Path(video), Path(out)
    _check_paths(video, out)
    if timeline is None:
        if measure is None:
            raise InvalidArgumentError("--per-segment needs the video's timeline: give --timeline t.json")
        timeline = measure(video)
    windows, jumps = check_timeline(timeline, video)
    stretches = plan_stretches(windows, jumps, float(timeline["duration_s"]), force=force)
    codec, copied = write_with_audio(video, out, lambda samples, rate: shift_per_stretch(samples, rate, stretches))
    after = measure(out)["windows"] if (measure is not None and remeasure) else None
    return PerSegmentResult(video, out, stretches, windows, after, codec, copied)


def check_timeline(timeline: dict, video: Path) -> tuple[list[dict], list[dict]]:
    """The windows and jumps of a timeline document, refused when it is malformed or of another video."""
    if not isinstance(timeline, dict) or not isinstance(timeline.get("windows"), list) \
            or not isinstance(timeline.get("duration_s"), (int, float)):
        raise InvalidArgumentError("the timeline has no per-window readings: give the JSON that "
                                   "`syncnet-fcn timeline VIDEO -o t.json` writes")
    from .media import probe

    duration = probe(video).duration_s
    if abs(float(timeline["duration_s"]) - duration) > 1.0:
        raise InvalidArgumentError(f"the timeline is of a {timeline['duration_s']:.1f} s recording"
                                   f"{' (' + str(timeline.get('video')) + ')' if timeline.get('video') else ''}, "
                                   f"but {video.name} lasts {duration:.1f} s: give the timeline of this video")
    for w in timeline["windows"]:
        if not isinstance(w, dict) or not {"start", "end"} <= w.keys():
            raise InvalidArgumentError("a timeline window lacks its start/end: give the JSON that "
                                       "`syncnet-fcn timeline VIDEO -o t.json` writes")
    return timeline["windows"], list(timeline.get("jumps") or [])


#: progress(stage, fraction): "measuring" (the input), then "re-measuring" (the output)
SegmentProgress = Callable[[str, float], None]


def timeline_measure(engine: str = "landmark", window_s: float = 10.0, max_offset: int = 15,
                     progress: SegmentProgress | None = None) -> Measure:
    """A :data:`Measure` running the timeline pipeline. Raises :class:`IdentityUnavailableError` now,
    not after the first window, when the ``timeline`` extra (face identities) is not installed."""
    import importlib.util

    from .identity import EXTRA_HINT, IdentityUnavailableError
    from .timeline import TimelinePipeline

    for module in ("dlib", "face_recognition_models"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ValueError:  # imported as None (switched off)
            found = False
        if not found:
            raise IdentityUnavailableError(f"measuring per window needs face identities ({module} is missing): "
                                           f"{EXTRA_HINT}")

    runs = []

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress("measuring" if len(runs) == 1 else "re-measuring", done / max(1, total))

    pipe = TimelinePipeline(engine=engine, window_s=window_s, max_offset=max_offset, voices=False, progress=report)

    def measure(path: Path) -> dict:
        runs.append(path)
        return pipe.run(path).to_dict()

    return measure


__all__ = ["Stretch", "PerSegmentResult", "plan_stretches", "shift_per_stretch", "fix_per_segment",
           "check_timeline", "timeline_measure"]
