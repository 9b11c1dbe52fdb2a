"""syncnet-fcn fix: audio moved at sample level, video copied packet for packet, refusal when unsure."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from syncnet_fcn.cli import main
from syncnet_fcn.media import encode_audio, load_audio, probe, shift_audio
from syncnet_fcn.repair import shift_samples, stream_durations, video_packets_digest, write_shifted

CLIP = "grid_bbaf2n.mpg"  # 3 s, one face, reliable reading


def with_audio(video: Path, out: Path, samples: np.ndarray) -> Path:
    """``video``'s video packets copied, with ``samples`` (16 kHz mono int16 on its timeline) as AAC."""
    with av.open(str(video)) as source, av.open(str(out), "w") as sink:
        vin = source.streams.video[0]
        vout = sink.add_stream_from_template(vin)
        aout = sink.add_stream("aac", rate=16000, layout="mono")
        aout.time_base = Fraction(1, 16000)
        last = None
        for packet in source.demux(vin):
            if packet.dts is None:
                continue
            if last is not None and packet.dts <= last:
                packet.dts = last + 1
                packet.pts = max(packet.pts, packet.dts)
            last = packet.dts
            packet.stream = vout
            sink.mux(packet)
        encode_audio(sink, aout, samples)
    return out


def reading(capsys_out: str, which: str) -> int:
    line = next(l for l in capsys_out.splitlines() if l.startswith(which))
    return int(line.split("offset ")[1].split(" frames")[0])


def test_shift_samples_pads_and_trims_at_the_ends():
    x = np.arange(1, 11, dtype=np.float32)[None]
    assert shift_samples(x, 3).tolist() == [[0, 0, 0, 1, 2, 3, 4, 5, 6, 7]]
    assert shift_samples(x, -3).tolist() == [[4, 5, 6, 7, 8, 9, 10, 0, 0, 0]]
    assert not shift_samples(x, 20).any()


@pytest.mark.parametrize("name", ["grid_bbaf2n.mpg", "syncnetfcn_test_offset5.avi", "pcavs_00015.mp4"])
def test_shifted_copy_moves_only_the_audio(clip, tmp_path, name):
    """Each container (MPEG-PS/mp2, AVI/mp3, MP4/AAC): the decoded audio is the input's moved by exactly
    the asked frames; video packets and both streams' durations unchanged."""
    source = clip(name)
    out = tmp_path / f"out{source.suffix}"
    write_shifted(source, out, 3)
    before, after = load_audio(source).astype(float), load_audio(out).astype(float)
    expected = shift_audio(load_audio(source), 3).astype(float)
    n = min(len(after), len(expected)) - 4000
    lags = np.arange(-400, 401)
    scores = [np.dot(after[2000 + lag:2000 + lag + n - 800], expected[2000:2000 + n - 800]) for lag in lags]
    assert abs(int(lags[int(np.argmax(scores))])) <= 16  # within 1 ms: lossy re-encoding, no drift
    assert np.corrcoef(after[4000:4000 + n - 8000], expected[4000:4000 + n - 8000])[0, 1] > 0.9
    assert abs(len(after) - len(before)) < 640  # under one frame
    assert video_packets_digest(out) == video_packets_digest(source)
    d_in, d_out = stream_durations(source), stream_durations(out)
    assert abs(d_out["video"] - d_in["video"]) < 0.04 and abs(d_out["audio"] - d_in["audio"]) < 0.04


@pytest.mark.slow
def test_fix_round_trip_on_a_clip_shifted_at_sample_level(clip, tmp_path, capsys):
    source = clip(CLIP)
    shifted = with_audio(source, tmp_path / "shifted.mp4", shift_audio(load_audio(source), -6))  # audio 6 early
    fixed = tmp_path / "fixed.mp4"
    assert main(["fix", str(shifted), "-o", str(fixed), "--quiet"]) == 0
    out = capsys.readouterr().out
    before, after = reading(out, "before:"), reading(out, "after:")
    assert abs(before - 6) <= 1  # the clip reads 0 in sync; moving the audio 6 frames early reads +6
    assert abs(after) <= 1
    assert video_packets_digest(fixed) == video_packets_digest(shifted)
    assert abs(probe(fixed).duration_s - probe(shifted).duration_s) < 0.04
    assert shifted.exists()  # the input is never touched


@pytest.mark.slow
def test_unreliable_reading_is_refused_unless_forced(clip, tmp_path, capsys):
    video = clip(CLIP)
    foreign = load_audio(clip("grid_swiz3n.mpg"))  # another speaker's sentence: lips and sound disagree
    n = probe(video).n_frames * 640
    mismatched = with_audio(video, tmp_path / "wrong_voice.mp4", np.resize(foreign, n))
    out = tmp_path / "fixed.mp4"
    assert main(["fix", str(mismatched), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "unreliable" in err and "--force" in err and len(err.splitlines()) == 1
    assert not out.exists()
    assert main(["fix", str(mismatched), "-o", str(out), "--offset", "2", "--quiet"]) == 0  # a given offset
    assert "delayed by 2 frames" in capsys.readouterr().out and out.exists()


def test_fix_never_overwrites_its_input(clip, tmp_path, capsys):
    source = tmp_path / "talk.mpg"
    source.write_bytes(clip(CLIP).read_bytes())
    assert main(["fix", str(source), "-o", str(source)]) == 2
    assert "overwrite the input" in capsys.readouterr().err
    assert main(["fix", str(source), "-o", str(tmp_path / "x.mpg"), "--per-segment"]) == 2
    assert "timeline" in capsys.readouterr().err
    assert source.read_bytes() == clip(CLIP).read_bytes()
