"""Whether two clips are the same recording, by their sound: training must never see an evaluation clip.

Pages re-encode, crop and cut the clips they show, so files differ byte for byte while the recording
is the same. The sound's loudness contour survives all of that: the speech-band log energy every
10 ms (:func:`loudness_contour`) of the shorter clip is slid along the longer one and compared by
normalised correlation (OpenCV's template matching); the same recording correlates above
:data:`SAME_RECORDING_CORRELATION` over a second or more, different recordings stay far below it.
"""

from __future__ import annotations

import numpy as np

from . import AUDIO_SAMPLE_RATE

HOP_SAMPLES = 160  # 10 ms
WINDOW_SAMPLES = 400
# A re-encoded or cut copy correlates above 0.99; a 1.2 s word slid along a minute of other speech
# finds chance matches up to about 0.95.
SAME_RECORDING_CORRELATION = 0.97
#: Contours compared over at most this many steps (8 s) of the shorter clip, at least this many (1 s).
MAX_TEMPLATE_STEPS = 800
MIN_TEMPLATE_STEPS = 100


def loudness_contour(audio: np.ndarray) -> np.ndarray:
    """``(steps,)`` float32 log energy of 300–3000 Hz every 10 ms of 16 kHz mono audio."""
    samples = np.asarray(audio, dtype=np.float64).reshape(-1)
    if len(samples) < WINDOW_SAMPLES:
        return np.zeros(0, np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(samples, WINDOW_SAMPLES)[::HOP_SAMPLES]
    power = np.abs(np.fft.rfft(windows * np.hanning(WINDOW_SAMPLES), axis=1)) ** 2
    hz = np.fft.rfftfreq(WINDOW_SAMPLES, 1 / AUDIO_SAMPLE_RATE)
    band = power[:, (hz > 300) & (hz < 3000)].sum(axis=1)
    return np.log(band + 1e-3 * (np.median(band) + 1e-9)).astype(np.float32)


def contour_match(a: np.ndarray, b: np.ndarray) -> float:
    """Best normalised correlation of the shorter contour (up to 8 s of it) slid along the longer one;
    0 when the shorter is under a second or has no variation."""
    import cv2

    short, long = (a, b) if len(a) <= len(b) else (b, a)
    short = short[:MAX_TEMPLATE_STEPS]
    if len(short) < MIN_TEMPLATE_STEPS or short.std() < 1e-6:
        return 0.0
    scores = cv2.matchTemplate(long[None, :].astype(np.float32), short[None, :].astype(np.float32), cv2.TM_CCOEFF_NORMED)
    scores = scores[np.isfinite(scores)]
    return float(scores.max()) if len(scores) else 0.0


def find_same_recordings(candidates: dict[str, np.ndarray], references: dict[str, np.ndarray],
                         threshold: float = SAME_RECORDING_CORRELATION) -> dict[str, str]:
    """``{candidate name: "same recording as <reference> (correlation c)"}`` for every candidate whose
    sound matches a reference's; arguments map names to 16 kHz audio."""
    reference_contours = {name: loudness_contour(audio) for name, audio in references.items()}
    found = {}
    for name, audio in candidates.items():
        contour = loudness_contour(audio)
        best = max(((contour_match(contour, ref), ref_name) for ref_name, ref in reference_contours.items()),
                   default=(0.0, ""))
        if best[0] >= threshold:
            found[name] = f"same recording as {best[1]} (sound contours correlate {best[0]:.3f})"
    return found
