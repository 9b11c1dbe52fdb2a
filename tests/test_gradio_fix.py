"""The Gradio "Fix sync" tab: a shifted clip in, a corrected copy and before/after curves out."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import gradio as gr
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # gradio_fix.py lives at the repository root
import gradio_fix  # noqa: E402
from syncnet_fcn import service  # noqa: E402
from syncnet_fcn.repair import video_packets_digest, write_shifted  # noqa: E402


@pytest.mark.slow
def test_fix_tab_corrects_a_shifted_clip_and_draws_both_curves(clip, tmp_path):
    shifted = tmp_path / "talk.mpg"
    write_shifted(clip("grid_bbaf2n.mpg"), shifted, 4)  # audio 4 frames late: reads -4
    summary, figure, out = gradio_fix.fix_clip(str(shifted), None, False, service.PipelineCache(), tmp_path,
                                               progress=lambda *a, **k: None)
    before = int(re.search(r"\*\*before:\*\* ([+-]\d+) frames", summary).group(1))
    after = int(re.search(r"\*\*after:\*\* ([+-]\d+) frames", summary).group(1))
    assert abs(before + 4) <= 1 and abs(after) <= 1
    assert len(figure.axes) == 2 and [a.get_title().split(":")[0] for a in figure.axes] == ["before", "after"]
    assert video_packets_digest(out) == video_packets_digest(shifted)


def test_fix_tab_errors_are_readable(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"junk")
    with pytest.raises(gr.Error):
        gradio_fix.fix_clip(str(junk), None, False, service.PipelineCache(), tmp_path, progress=lambda *a, **k: None)
    with pytest.raises(gr.Error):
        gradio_fix.fix_clip(None, None, False, service.PipelineCache(), tmp_path, progress=lambda *a, **k: None)


@pytest.mark.slow
def test_fix_tab_corrects_an_offset_that_changes_half_way_stretch_by_stretch(clip, tmp_path):
    """The clip twice in a row, the second copy's audio 5 frames late: per stretch, both halves read
    0 ± 1 afterwards and the summary lists two stretches."""
    import numpy as np

    from conftest import write_test_video
    from syncnet_fcn.media import iter_frames, load_audio, shift_audio

    source = clip("grid_bbaf2n.mpg")
    frames = [image for _, image in iter_frames(source)]
    n = len(frames)
    audio = load_audio(source)
    audio = audio[: n * 640] if len(audio) >= n * 640 else np.pad(audio, (0, n * 640 - len(audio)))
    video = write_test_video(tmp_path / "drift.mp4", frames + frames, np.concatenate([audio, shift_audio(audio, 5)]))
    summary, figure, out = gradio_fix.fix_clip(str(video), None, False, service.PipelineCache(), tmp_path,
                                               progress=lambda *a, **k: None, per_segment=True, window_s=n / 25)
    assert figure is None
    assert len(re.findall(r"^- \d\d:\d\d\.\d\d–", summary, flags=re.M)) == 2, summary
    rows = [line.split("|")[2:4] for line in summary.splitlines() if re.match(r"\| \d\d:", line)]
    before = [int(b.split()[0]) for b, _ in rows]
    after = [int(a.split()[0]) for _, a in rows]
    assert len(rows) == 2 and abs(before[1] - before[0] + 5) <= 1 and all(abs(a) <= 1 for a in after), summary
    assert video_packets_digest(out) == video_packets_digest(video)
    with pytest.raises(gr.Error):  # one offset for the whole video and per stretch exclude each other
        gradio_fix.fix_clip(str(video), 3, False, service.PipelineCache(), tmp_path,
                            progress=lambda *a, **k: None, per_segment=True)
