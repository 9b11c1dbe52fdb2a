"""benchmarks/corpus_lag.py: the model-free own-offset reading a training corpus is aligned by."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from corpus_lag import corpus_reading, lag_curve  # noqa: E402

from syncnet_fcn.media import shift_audio  # noqa: E402


def test_lag_curve_peaks_where_the_sound_follows_the_lips():
    rng = np.random.default_rng(0)
    lips = rng.normal(size=400)
    sound = np.roll(lips, 3)  # the sound comes 3 frames after the lips
    assert int(np.argmax(lag_curve(lips, sound))) - 8 == 3


def test_reading_moves_by_a_sample_level_audio_delay_on_a_real_clip(clip):
    """Delaying a real clip's sound by S frames lowers the reading by S (the SyncNet convention)."""
    from test_landmark import clip_landmarks, track_span

    landmarks, audio, track = clip_landmarks(clip("syncnet_example.avi"))
    span = track_span(audio, track)
    base, used = corpus_reading([{"landmarks": landmarks, "audio": span}])
    assert used == 1
    # the clip's documented own offset is +3; this model-free reading lands near it
    assert abs(base - 3) <= 1.0, base
    for delay in (-4, 2.5, 5):
        moved, _ = corpus_reading([{"landmarks": landmarks, "audio": shift_audio(span, delay)}])
        assert abs((base - moved) - delay) <= 0.6, (delay, base, moved)
