"""Memory per face track (issue 21): an edited video's many short tracks must cost no more than one.

On a video of three shots (three face tracks, one after the other) the pipeline must drop each track's
scorer, with the engine's working data (face meshes, audio features), once the track is read, and a
finished track's reading may keep only what the report needs: a few hundred bytes per frame.
"""

from __future__ import annotations

import gc
import weakref
from dataclasses import fields, is_dataclass

import numpy as np
import pytest

from conftest import REPO, clip_path, write_test_video
from syncnet_fcn.media import iter_frames, load_audio
from syncnet_fcn.pipeline import SyncPipeline

pytestmark = pytest.mark.slow

LIGHT_CHECKPOINT = REPO / "checkpoints" / "syncnet_light.pt"
# What a finished track may keep per frame: its box and frame index (28 B), the distance matrix the
# report re-judges faces with (31 float64 offsets, 248 B), per-frame confidence and speaking flags.
READING_BYTES_PER_FRAME = 320
READING_BYTES_FIXED = 16 << 10


def array_bytes(root) -> int:
    """Bytes of the numpy arrays reachable from ``root`` through dataclass fields, containers and
    instance attributes (each array's memory counted once)."""
    seen_objects, seen_buffers, total = set(), set(), 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen_objects:
            continue
        seen_objects.add(id(obj))
        if isinstance(obj, np.ndarray):
            base = obj if obj.base is None else obj.base
            if isinstance(base, np.ndarray) and id(base) not in seen_buffers:
                seen_buffers.add(id(base))
                total += base.nbytes
        elif isinstance(obj, dict):
            stack += list(obj.keys()) + list(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack += list(obj)
        elif is_dataclass(obj) and not isinstance(obj, type):
            stack += [getattr(obj, f.name) for f in fields(obj)]
        elif hasattr(obj, "__dict__") and not isinstance(obj, type) and not callable(obj):
            stack += list(vars(obj).values())
    return total


@pytest.fixture(scope="module")
def three_shots(tmp_path_factory):
    """Three shots of two real talking faces with hard cuts between: 4 s of each, then 4 more s of the first."""
    parts = [(clip_path("pcavs_00098.mp4"), 0), (clip_path("syncnet_example.avi"), 0),
             (clip_path("pcavs_00098.mp4"), 100)]
    frames, audio = [], []
    for path, start in parts:
        frames += [image for _, image in iter_frames(path, start_frame=start, end_frame=start + 100)]
        audio.append(load_audio(path, start_frame=start, end_frame=start + 100))
    return write_test_video(tmp_path_factory.mktemp("shots") / "three_shots.mp4", frames, np.concatenate(audio))


def test_each_track_is_read_and_let_go_before_the_next_one_starts(three_shots, monkeypatch):
    engines = ["landmark", "fcn"] if LIGHT_CHECKPOINT.exists() else ["landmark"]
    pipe = SyncPipeline(engines=engines, weights=str(LIGHT_CHECKPOINT))
    tracks = pipe.find_tracks(three_shots)
    assert len(tracks) == 3 and all(a.end_frame < b.start_frame for a, b in zip(tracks, tracks[1:]))

    alive_at_start = []  # per started scorer: how many scorers of earlier, finished tracks are still alive
    scorers = []  # (weakref to a scorer, its track's last frame)
    for engine in pipe.engines.values():
        def start_track(audio, n_frames, max_offset=15, _start=engine.start_track,
                        _order=iter(sorted(tracks, key=lambda t: t.start_frame))):
            track = next(_order)  # the pipeline starts tracks in the order their crops come
            gc.collect()
            alive_at_start.append(sum(1 for ref, end in scorers if ref() is not None and end < track.start_frame))
            scorer = _start(audio, n_frames, max_offset)
            scorers.append((weakref.ref(scorer), track.end_frame))
            return scorer

        monkeypatch.setattr(engine, "start_track", start_track)
    reports = pipe.analyze(three_shots, tracks=tracks)
    assert len(scorers) == 3 * len(pipe.engines)
    assert alive_at_start == [0] * len(scorers), "scorers of finished tracks are still held"

    for name, report in reports.items():
        assert [r.track_id for r in report.tracks] == [t.track_id for t in tracks]
        for result in report.tracks:
            held = array_bytes(result)
            budget = READING_BYTES_PER_FRAME * result.track.n_frames + READING_BYTES_FIXED
            assert held <= budget, f"{name}: track {result.track_id} keeps {held} bytes ({budget} allowed)"
            assert len(result.sync.per_frame_confidence) == result.track.n_frames


def test_one_pass_lets_each_track_go_before_the_next_one_opens(three_shots, monkeypatch):
    """The one decoding pass hands crops to open scorers while a face is followed: each track's open
    scorer must still be dropped once the track is read, before the next track's crops come."""
    pipe = SyncPipeline(engine="landmark")
    engine = pipe.engines["landmark"]
    opened = []  # weak references to the open scorers, in the order they were made
    alive_at_open = []  # per opened scorer: how many earlier ones are still alive

    def open_track(max_offset=15, _open=engine.open_track):
        gc.collect()
        alive_at_open.append(sum(1 for ref in opened if ref() is not None))
        scorer = _open(max_offset)
        opened.append(weakref.ref(scorer))
        return scorer

    monkeypatch.setattr(engine, "open_track", open_track)
    report = pipe.run(three_shots)
    assert len(report.tracks) == 3 and len(opened) == 3
    assert alive_at_open == [0, 0, 0], "open scorers of finished tracks are still held"
    for result in report.tracks:
        held = array_bytes(result)
        assert held <= READING_BYTES_PER_FRAME * result.track.n_frames + READING_BYTES_FIXED
