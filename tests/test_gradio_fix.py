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
