"""The Gradio demo's handler and layout, without a browser (tests/test_browser.py drives it in Chromium)."""

from __future__ import annotations

import json
import sys

import gradio as gr
import numpy as np
import pytest
from matplotlib.figure import Figure

from conftest import REPO, write_test_video

sys.path.insert(0, str(REPO))  # app_gradio.py lives at the repository root
import app_gradio  # noqa: E402
from syncnet_fcn.media import probe  # noqa: E402

SHORT_CLIP = "grid_bbaf2n.mpg"


@pytest.fixture(autouse=True)
def isolated_engines(tmp_path, monkeypatch):
    """No SyncNet weights: the engine that runs is ``landmark``."""
    monkeypatch.setenv("SYNCNET_FCN_CACHE", str(tmp_path / "weights_cache"))
    monkeypatch.delenv("SYNCNET_FCN_WEIGHTS", raising=False)
    monkeypatch.setenv("SYNCNET_FCN_NO_PROJECT_WEIGHTS", "1")


class ProgressRecorder:
    def __init__(self):
        self.calls = []

    def __call__(self, fraction, desc=None, **_):
        self.calls.append((fraction, desc))


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (np.sin(2 * np.pi * 220 * t) * 4000).astype(np.int16)


def test_demo_is_blocks_and_defaults_to_every_runnable_engine():
    assert isinstance(app_gradio.demo, gr.Blocks)
    choices, default, unavailable = app_gradio.engine_choices()
    assert [value for _, value in choices] == ["syncnet", "fcn", "landmark", "fused"]
    assert default == ["landmark"]
    labels = dict((value, label) for label, value in choices)
    assert "unavailable" in labels["syncnet"] and "unavailable" not in labels["landmark"]
    assert "unavailable" in labels["fused"]
    assert "weights" in unavailable.lower()


def test_demo_builds_without_the_shared_clips(tmp_path, monkeypatch):
    monkeypatch.setattr(app_gradio, "CLIPS", tmp_path / "no_clips_here")
    assert app_gradio.example_videos() == []
    assert isinstance(app_gradio.build_demo(), gr.Blocks)


def test_examples_are_only_clips_that_exist(clip):
    clip(app_gradio.EXAMPLE_CLIPS[0])
    found = app_gradio.example_videos()
    assert found and all(app_gradio.CLIPS.joinpath(name).is_file() for name in
                         [p[0].rsplit("/", 1)[-1] for p in found])


@pytest.mark.slow
def test_analyze_shows_each_engine_with_plots_video_and_json(clip):
    video = clip(SHORT_CLIP)
    progress = ProgressRecorder()
    summary, table, confidence, curves, turns, annotated, stills, json_path = app_gradio.analyze(
        str(video), ["landmark"], 15, progress=progress)

    document = json.loads(open(json_path).read())
    report = document["engines"]["landmark"]
    assert document["video"] == SHORT_CLIP
    offset = report["offset_frames"]
    assert f'data-engine="landmark" data-offset="{offset}"' in summary
    words = "early" if offset > 0 else "late" if offset < 0 else "in sync"
    assert words in summary
    # an unreliable reading is shown as a best guess, never as the verdict alone
    assert ("no reliable sync (best guess" in summary) == (not report["reliable"])
    assert len(table) == len(report["tracks"]) and table[0][3] == offset and table[0][4] == offset * 40
    for figure in (confidence, curves, turns, stills):
        assert isinstance(figure, Figure) and figure.axes
    assert [line.get_label() for line in confidence.axes[0].get_lines()][0] == "Landmark"

    info, source = probe(annotated), probe(video)
    assert info.has_audio and info.n_frames == source.n_frames
    fractions = [f for f, _ in progress.calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {"Finding faces", "Measuring sync"} <= {d for _, d in progress.calls}


@pytest.mark.parametrize("case", ["no video", "no engine", "random bytes", "no face"])
def test_analyze_errors_are_readable_messages(case, tmp_path, clip):
    video, engines, expected = None, ["landmark"], ""
    if case == "no video":
        expected = "Upload a video"
    elif case == "no engine":
        video, engines, expected = str(clip(SHORT_CLIP)), [], "at least one engine"
    elif case == "random bytes":
        path = tmp_path / "random.mp4"
        path.write_bytes(np.random.default_rng(0).bytes(30_000))
        video, expected = str(path), "random.mp4"
    else:
        rng = np.random.default_rng(3)
        frames = [rng.integers(0, 40, (96, 128, 3), dtype=np.uint8) for _ in range(40)]
        video, expected = str(write_test_video(tmp_path / "noface.mp4", frames, tone(1.6))), "no face"
    with pytest.raises(gr.Error) as caught:
        app_gradio.analyze(video, engines, 15, progress=ProgressRecorder())
    message = caught.value.message
    assert expected in message and "\n" not in message and "Traceback" not in message


def test_a_muted_video_shows_no_reading_rather_than_a_guess(clip, tmp_path):
    """A face with a digitally silent soundtrack: the card says there is no reading, not an offset."""
    from syncnet_fcn.media import iter_frames, load_audio

    source = clip(SHORT_CLIP)
    muted = tmp_path / "muted.mp4"
    write_test_video(muted, [f for _, f in iter_frames(source)], np.zeros_like(load_audio(source)))
    summary, *_, json_path = app_gradio.analyze(str(muted), ["landmark"], 15, progress=ProgressRecorder())
    report = json.loads(open(json_path).read())["engines"]["landmark"]
    assert report["reliable"] is False and report["min_dist"] is None
    assert "no reliable sync: no reading" in summary and "best guess" not in summary
