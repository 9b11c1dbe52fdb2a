"""Long recordings: who talks or sings when, for named people, and the sync offset over time.

:class:`TimelinePipeline` reads a recording once, in order, window by window (10 s by default), and
never holds more than one window's face crops:

    frames (one decode) → face pieces per window (:mod:`window_tracks`)
      → who each face is (:mod:`identity`: enrolled person or unknown cluster P1, P2, …)
      → sync per face (the engine's ``start_track/push/finish``) → who is heard, frame by frame
      → sound kind per frame (:mod:`sound_activity`) → voice off screen (:mod:`voices`)
      → one record per window: face tracks, segments, the window's offset reading

Each finished window is appended, with the identity and voice galleries as they stand after it, to a
checkpoint file (JSON lines). ``resume=True`` reads the checkpoint back, restores the galleries and
carries on at the next window; since a window's result depends only on its own frames and on the
galleries, a resumed run produces the same records as an uninterrupted one. Progress goes to
``progress(done_frames, total_frames)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import TIMELINE_FPS
from .engines import create_engine
from .errors import InvalidArgumentError, NoAudioError
from .media import iter_timeline, load_audio, prefetched, probe, track_audio
from .report import TrackResult, attribute_speakers
from .sound_activity import classifier_name, frame_sound_kinds
from .timeline_checkpoint import CHECKPOINT_VERSION, read_checkpoint, write_lines
from .timeline_result import Timeline, build_timeline
from .tracking import FaceTrack, TrackingOptions
from .window_speakers import WindowSpeakers

ProgressCallback = Callable[[int, int], None]

#: a face must be followed this long within a window to be read (the engines need context)
MIN_PIECE_FRAMES = 25
#: crops per face piece that are described for identity
_IDENTITY_SAMPLES = 2


@dataclass
class PersonSpec:
    """An enrolment from the command line: ``A=a1.jpg,a2.jpg`` or ``A=@00:12:30`` (or both, repeated)."""

    name: str
    photos: list[str]
    times_s: list[float]

    @classmethod
    def parse(cls, text: str) -> PersonSpec:
        name, sep, rest = text.partition("=")
        name = name.strip()
        if not sep or not name or not rest.strip():
            raise InvalidArgumentError(f"--person {text!r}: write NAME=photo.jpg[,photo2.jpg] or NAME=@HH:MM:SS")
        if name == "unknown" or (name.startswith("P") and name[1:].isdigit()):
            raise InvalidArgumentError(f"--person name {name!r} is reserved for unknown faces; choose another")
        photos, times = [], []
        for item in (p.strip() for p in rest.split(",")):
            if item.startswith("@"):
                times.append(parse_clock(item[1:]))
            elif item:
                photos.append(item)
        return cls(name, photos, times)


def parse_clock(text: str) -> float:
    """``"00:12:30"``, ``"12:30.5"`` or ``"750"`` → seconds."""
    try:
        parts = [float(p) for p in text.strip().split(":")]
    except ValueError:
        parts = []
    if not 1 <= len(parts) <= 3 or any(p < 0 for p in parts):
        raise InvalidArgumentError(f"cannot read the time {text!r}: write HH:MM:SS, MM:SS or seconds")
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


class TimelinePipeline:
    """Who talks when over a long recording, with the sync offset per window.

    >>> pipe = TimelinePipeline(people=[PersonSpec.parse("A=a.jpg")])
    >>> timeline = pipe.run("show.mp4", checkpoint="show.timeline.jsonl")
    """

    def __init__(self, *, engine: str = "landmark", window_s: float = 10.0, max_offset: int = 15,
                 people: list[PersonSpec] = (), voices: bool = True, detector: str = "mediapipe",
                 tracking: TrackingOptions | None = None, progress: ProgressCallback | None = None):
        if not 2.0 <= float(window_s) <= 600.0:
            raise InvalidArgumentError(f"window must be between 2 and 600 seconds, got {window_s}")
        if not 1 <= int(max_offset) <= 50:
            raise InvalidArgumentError(f"max_offset must be between 1 and 50 frames, got {max_offset}")
        names = [p.name for p in people]
        if len(set(names)) != len(names):
            raise InvalidArgumentError("each --person name may be given once (list several photos after one =)")
        self.window_frames = int(round(float(window_s) * TIMELINE_FPS))
        self.max_offset = int(max_offset)
        self.people = list(people)
        self.use_voices = bool(voices)
        self.tracking = tracking or TrackingOptions()
        self.progress = progress
        self.engine = create_engine(engine)
        from detectors import create_detector

        self.detector = create_detector(detector, min_confidence=self.tracking.min_confidence, max_side=None)
        self.detector_name = detector

    def settings(self) -> dict:
        return {
            "engine": self.engine.name,
            "window_s": self.window_frames / TIMELINE_FPS,
            "max_offset": self.max_offset,
            "detect_every": self.tracking.detect_every,
            "min_face_size": self.tracking.min_face_size,
            "people": {p.name: {"photos": [Path(f).name for f in p.photos], "times_s": p.times_s} for p in self.people},
            "voices": self.use_voices,
            "sound_classifier": classifier_name(),
            "face_threshold": None,
            "voice_threshold": None,
        }

    # -- the run --------------------------------------------------------------------------------------

    def run(self, video: str | Path, *, checkpoint: str | Path | None = None, resume: bool = False,
            should_stop: Callable[[], bool] | None = None) -> Timeline:
        from .identity import FaceGallery
        from .voices import VoiceGallery

        video = Path(video)
        if not video.is_file():
            raise InvalidArgumentError(f"no such file: {video}")
        info = probe(video)
        if not info.has_audio:
            raise NoAudioError(f"{video.name} has no audio track: the timeline needs one")
        settings = self.settings()
        faces, voices = FaceGallery(), VoiceGallery()
        settings["face_threshold"], settings["voice_threshold"] = faces.threshold, voices.threshold
        header = {"kind": "header", "version": CHECKPOINT_VERSION, "video": video.name, "n_frames": info.n_frames,
                  "settings": settings}
        records: list[dict] = []
        checkpoint = Path(checkpoint) if checkpoint else None
        state = None
        if resume and checkpoint is not None and checkpoint.exists():
            records, state = read_checkpoint(checkpoint, header)
        if state is not None:
            faces, voices = FaceGallery.from_state(state["faces"]), VoiceGallery.from_state(state["voices"])
        else:  # a fresh run (the header and the enrolment are written together)
            self._enrol(video, info, faces)
            if checkpoint is not None:
                write_lines(checkpoint, [header, {"kind": "enrolment", "faces": faces.to_state()}], mode="w")

        started = time.perf_counter()
        total = info.n_frames
        first_window = len(records)
        window_start = first_window * self.window_frames
        timings = {"decode_track_s": 0.0, "identity_s": 0.0, "sync_s": 0.0, "voices_s": 0.0}
        complete = True
        if window_start < total:
            from .window_tracks import WindowFaces

            current = None
            pieces_of = None
            t0 = time.perf_counter()
            frames = prefetched(iter_timeline(video, start_frame=window_start, info=info), depth=8)
            try:
                for index, frame in frames:
                    w = index // self.window_frames
                    if w != current:
                        if pieces_of is not None:
                            timings["decode_track_s"] += time.perf_counter() - t0
                            records.append(self._finish_window(video, current, pieces_of.finish(), total,
                                                               faces, voices, checkpoint, timings))
                            if self.progress is not None:
                                self.progress(min(total, (current + 1) * self.window_frames), total)
                            if should_stop is not None and should_stop():
                                complete = False
                                break
                            t0 = time.perf_counter()
                        current, pieces_of = w, WindowFaces(self.detector, self.tracking, MIN_PIECE_FRAMES)
                    pieces_of.add(index, frame)
                else:
                    if pieces_of is not None:
                        timings["decode_track_s"] += time.perf_counter() - t0
                        records.append(self._finish_window(video, current, pieces_of.finish(), total,
                                                           faces, voices, checkpoint, timings))
            finally:
                frames.close()
        if self.progress is not None:
            self.progress(total if complete else min(total, len(records) * self.window_frames), total)
        timings["total_s"] = time.perf_counter() - started
        timings["windows_run"] = len(records) - first_window
        return build_timeline(video.name, info.duration_s, settings, records, complete=complete,
                              enrolled=[p.name for p in self.people], timings=timings)

    def check_enrolment(self, video: str | Path) -> None:
        """Describe every reference photo and enrolment time now: a bad one raises here, before a run."""
        from .identity import FaceGallery

        self._enrol(Path(video), probe(video), FaceGallery())

    def _enrol(self, video: Path, info, faces) -> None:
        from .identity import describe_photo, describe_single_face

        for person in self.people:
            for photo in person.photos:
                faces.enrol(person.name, describe_photo(photo, self.detector))
            for at in person.times_s:
                index = int(round(at * TIMELINE_FPS))
                if index >= info.n_frames:
                    raise InvalidArgumentError(f"--person {person.name}=@{_clock(at)}: the video is only "
                                               f"{_clock(info.duration_s)} long")
                image = next(iter_timeline(video, start_frame=index, end_frame=index + 1, info=info))[1].image()
                faces.enrol(person.name, describe_single_face(image, f"the frame at {_clock(at)}", self.detector,
                                                              largest=True))

    # -- one window -----------------------------------------------------------------------------------

    def _finish_window(self, video, w, pieces, total, faces, voices, checkpoint, timings) -> dict:
        from .identity import describe_crops

        first = w * self.window_frames
        stop = min(total, first + self.window_frames)
        n = stop - first
        audio = load_audio(video, start_frame=first, end_frame=stop)
        kinds = frame_sound_kinds(audio, n)

        t0 = time.perf_counter()
        labels = []
        for piece in pieces:
            picks = np.linspace(0, piece.n_frames - 1, _IDENTITY_SAMPLES + 2)[1:-1].round().astype(int)
            label, _ = faces.assign(describe_crops(np.stack([piece.crops[i] for i in picks])))
            labels.append(label)
        timings["identity_s"] += time.perf_counter() - t0

        t0 = time.perf_counter()
        results = []
        for k, piece in enumerate(pieces):
            scorer = self.engine.start_track(track_audio(audio, piece.start_frame - first, piece.n_frames),
                                             piece.n_frames, self.max_offset)
            track = FaceTrack(track_id=k, frames=np.arange(piece.start_frame, piece.start_frame + piece.n_frames),
                              boxes=np.array(piece.boxes, np.float32), scores=np.zeros(piece.n_frames, np.float32))
            scorer.push(np.stack(piece.crops))
            piece.crops = []  # the window's crops are no longer needed
            results.append(TrackResult(track, scorer.finish(), self.engine.speaking_threshold))
        attribute_speakers(results, self.engine.relative_speaking_threshold, self.engine.per_frame_confidence_at)
        timings["sync_s"] += time.perf_counter() - t0

        speakers = WindowSpeakers(first, kinds, results, labels)
        t0 = time.perf_counter()
        if self.use_voices:
            speakers.name_voices(audio, voices)
        timings["voices_s"] += time.perf_counter() - t0

        record = speakers.record(w, stop)
        if checkpoint is not None:
            write_lines(checkpoint, [{"kind": "window", "record": record,
                                       "state": {"faces": faces.to_state(), "voices": voices.to_state()}}])
        return record


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


__all__ = ["PersonSpec", "TimelinePipeline", "parse_clock"]
