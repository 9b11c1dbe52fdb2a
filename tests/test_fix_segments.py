"""syncnet-fcn fix --per-segment: an offset that changes half way is corrected stretch by stretch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from syncnet_fcn.cli import main
from syncnet_fcn.media import iter_frames, load_audio, probe, shift_audio
from syncnet_fcn.repair import stream_durations, video_packets_digest
from syncnet_fcn.errors import NoFaceError
from syncnet_fcn.repair import UnreliableReadingError
from syncnet_fcn.segment_fix import Stretch, plan_stretches, shift_per_stretch

from conftest import write_test_video

CLIP = "grid_bbaf2n.mpg"  # 3 s, one face, reliable reading
DELAY = 5  # frames the second half's audio lags by


@pytest.fixture(scope="module")
def drifting(tmp_path_factory):
    """The clip twice in a row, the second copy's audio delayed by DELAY frames at sample level."""
    from conftest import clip_path

    source = clip_path(CLIP)
    frames = [image for _, image in iter_frames(source)]
    audio = load_audio(source)
    n = len(frames)
    audio = audio[: n * 640] if len(audio) >= n * 640 else np.pad(audio, (0, n * 640 - len(audio)))
    path = tmp_path_factory.mktemp("drift") / "drift.mp4"
    return write_test_video(path, frames + frames, np.concatenate([audio, shift_audio(audio, DELAY)])), n / 25


def readings(text: str, column: int) -> list[int]:
    """Offsets of the printed window table (column 0: before, 1: after)."""
    rows = text.split("windows:")[1].split("audio re-encoded")[0].splitlines()[1:]
    return [int(row.split()[1 + 2 * column]) for row in rows]


def test_drifting_offset_is_fixed_per_stretch(drifting, tmp_path, capsys):
    video, half_s = drifting
    out = tmp_path / "fixed.mp4"
    assert main(["fix", str(video), "-o", str(out), "--per-segment", "--window", str(half_s), "--quiet"]) == 0
    text = capsys.readouterr().out
    before, after = readings(text, 0), readings(text, 1)
    assert len(before) == 2 and abs(before[1] - before[0] + DELAY) <= 1  # the second half reads ~5 lower
    assert all(abs(r) <= 1 for r in after), text
    assert video_packets_digest(out) == video_packets_digest(video)
    durations_in, durations_out = stream_durations(video), stream_durations(out)
    assert abs(durations_out["audio"] - durations_in["audio"]) <= 0.04
    assert abs(durations_out["video"] - durations_in["video"]) <= 0.04


def test_nothing_reliable_is_refused_unless_forced(drifting, tmp_path, capsys):
    video, _ = drifting
    doc = {"video": video.name, "duration_s": probe(video).duration_s, "jumps": [],
           "windows": [{"start": 0.0, "end": 3.0, "speaker": "P1", "offset_frames": 4, "reliable": False},
                       {"start": 3.0, "end": 6.0, "speaker": None}]}
    timeline = tmp_path / "t.json"
    timeline.write_text(json.dumps(doc))
    out = tmp_path / "out.mp4"
    assert main(["fix", str(video), "-o", str(out), "--per-segment", "--timeline", str(timeline), "--quiet"]) == 2
    assert "reliable" in capsys.readouterr().err and not out.exists()
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**doc, "duration_s": 60.0}))
    assert main(["fix", str(video), "-o", str(out), "--per-segment", "--timeline", str(other), "--quiet"]) == 2
    assert "timeline of this video" in capsys.readouterr().err and not out.exists()


def test_stretches_change_only_on_a_jump_or_agreeing_windows():
    def w(start, offset, reliable=True):
        return {"start": start, "end": start + 1, "offset_frames": offset, "reliable": reliable}

    windows = [w(0, 3), w(1, 3), w(2, 9), w(3, 3), w(4, None, False), w(5, -2), w(6, -1), w(7, 7, False)]
    stretches = plan_stretches(windows, [], 8.0)
    assert [(s.start_s, s.end_s, s.offset_frames) for s in stretches] == [(0.0, 5.0, 3), (5.0, 8.0, -2)]
    jumped = plan_stretches(windows[:3], [{"time_s": 2.0}], 3.0)  # a lone last window counts when reported
    assert [(s.start_s, s.offset_frames) for s in jumped] == [(0.0, 3), (2.0, 9)]
    unsure = [w(0, 4, False), w(1, 4, False)]
    with pytest.raises(UnreliableReadingError):
        plan_stretches(unsure, [], 2.0)
    assert [s.offset_frames for s in plan_stretches(unsure, [], 2.0, force=True)] == [4]
    with pytest.raises(NoFaceError):
        plan_stretches([w(0, None, False)], [], 1.0, force=True)


def test_boundaries_insert_silence_or_drop_samples():
    x = np.arange(1, 21, dtype=np.float32)[None]
    grow = shift_per_stretch(x, 25, [Stretch(0, 0.4, 0, 1), Stretch(0.4, 0.8, 2, 1)], fade_s=0)
    assert grow[0, 10:12].tolist() == [0, 0] and grow[0, 13:].tolist() == list(range(12, 19))
    shrink = shift_per_stretch(x, 25, [Stretch(0, 0.4, 2, 1), Stretch(0.4, 0.8, 0, 1)], fade_s=0)
    assert shrink[0, :10].tolist() == [0, 0, *range(1, 9)] and shrink[0, 11:].tolist() == list(range(12, 21))


def test_missing_extra_is_named_unless_a_timeline_is_given(drifting, tmp_path, capsys, monkeypatch):
    import sys

    video, _ = drifting
    monkeypatch.setitem(sys.modules, "dlib", None)  # an import of it now fails
    assert main(["fix", str(video), "-o", str(tmp_path / "o.mp4"), "--per-segment", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "syncnet-fcn[timeline]" in err and "--timeline" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_api_fix_per_segment(drifting, tmp_path, monkeypatch):
    import io
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # app.py lives at the repository root
    from app import create_app

    monkeypatch.setenv("SYNCNET_FCN_CACHE", str(tmp_path / "cache"))
    (tmp_path / "uploads").mkdir()
    client = create_app({"SYNC_UPLOAD_DIR": str(tmp_path / "uploads"), "TESTING": True}).test_client()
    video, half_s = drifting
    response = client.post("/api/fix", data={"video": (io.BytesIO(video.read_bytes()), "drift.mp4"),
                                             "per_segment": "true", "window": str(half_s)})
    assert response.status_code == 200, response.data[:300]
    stretches = json.loads(response.headers["X-Sync-Stretches"])
    assert [s["start_s"] for s in stretches] == [0.0, half_s]
    assert all(abs(w["offset_frames"]) <= 1 for w in json.loads(response.headers["X-Sync-After"]))
    fixed = tmp_path / "fixed.mp4"
    fixed.write_bytes(response.data)
    assert video_packets_digest(fixed) == video_packets_digest(video)
    response = client.post("/api/fix", data={"video": (io.BytesIO(video.read_bytes()), "drift.mp4"),
                                             "per_segment": "true", "offset": "3"})
    assert response.status_code == 400 and "per_segment" in response.json["error"]["message"]
