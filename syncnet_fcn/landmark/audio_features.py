"""Speech features of the landmark engine on the 25 fps timeline, and which frames have any sound.

For each of a frame's four 10 ms steps: 13 MFCC, the speech-band log energy and the positive spectral
flux (:func:`audio_frame_features`). :func:`heard_frames` tells digital silence (audio that is not
there) from a quiet room.
"""

from __future__ import annotations

import numpy as np

from .. import AUDIO_SAMPLE_RATE, SAMPLES_PER_FRAME

# Audio analysis: 25 ms Hamming windows every 10 ms, four per 40 ms video frame, centred on the frame.
WINDOW_SAMPLES = 400
HOP_SAMPLES = 160
STEPS_PER_FRAME = SAMPLES_PER_FRAME // HOP_SAMPLES  # 4
FFT_SIZE = 512
N_MEL_BANDS = 26
N_MFCC = 13
PRE_EMPHASIS = 0.97
SPEECH_BAND_HZ = (300.0, 3000.0)
# Digital silence must not become log(0): energies are floored this far below the track's median.
ENERGY_FLOOR_RATIO = 1e-3
AUDIO_FEATURES = STEPS_PER_FRAME * (N_MFCC + 2)  # 60
AUDIO_BLOCK_STEPS = 4096  # analysis windows whose spectra are computed together


def audio_frame_features(audio: np.ndarray, n_frames: int, pad_frames: int = 0) -> np.ndarray:
    """``(n_frames + 2*pad_frames, 60)`` float32 features per 25 fps frame.

    Row ``r`` describes timeline frame ``r - pad_frames``; frames outside the audio are digital
    silence. Columns: the 13 MFCC of each of the frame's four 10 ms steps (52), then the four steps'
    speech-band log energies, then their positive spectral fluxes.
    """
    from python_speech_features import get_filterbanks
    from scipy.fft import dct

    samples = np.asarray(audio, dtype=np.float64).reshape(-1)
    needed = n_frames * SAMPLES_PER_FRAME
    samples = samples[:needed] if len(samples) >= needed else np.pad(samples, (0, needed - len(samples)))
    # centre the four analysis windows on the frame: step j of frame i starts at 640*i + 160*j - 120
    lead = pad_frames * SAMPLES_PER_FRAME + (WINDOW_SAMPLES - HOP_SAMPLES) // 2
    tail = pad_frames * SAMPLES_PER_FRAME + WINDOW_SAMPLES
    samples = np.concatenate([np.zeros(lead), samples, np.zeros(tail)])
    samples[1:] = samples[1:] - PRE_EMPHASIS * samples[:-1]

    rows = n_frames + 2 * pad_frames
    steps = rows * STEPS_PER_FRAME
    all_windows = np.lib.stride_tricks.sliding_window_view(samples, WINDOW_SAMPLES)
    hamming = np.hamming(WINDOW_SAMPLES)
    banks = get_filterbanks(N_MEL_BANDS, FFT_SIZE, AUDIO_SAMPLE_RATE).T
    freqs = np.fft.rfftfreq(FFT_SIZE, 1 / AUDIO_SAMPLE_RATE)
    band = (freqs >= SPEECH_BAND_HZ[0]) & (freqs <= SPEECH_BAND_HZ[1])
    mel = np.empty((steps, N_MEL_BANDS))
    speech = np.empty(steps)
    # the spectra in blocks: all at once they would take ~50 kB per frame
    for first in range(0, steps, AUDIO_BLOCK_STEPS):
        block = slice(first, min(steps, first + AUDIO_BLOCK_STEPS))
        windows = all_windows[HOP_SAMPLES * np.arange(block.start, block.stop)]
        power = np.abs(np.fft.rfft(windows * hamming, FFT_SIZE)) ** 2 / FFT_SIZE
        mel[block] = power @ banks
        speech[block] = power[:, band].sum(axis=1)
    total = mel.sum(axis=1)
    loud = total[total > 0]
    floor = (np.median(loud) if len(loud) else 1.0) * ENERGY_FLOOR_RATIO
    log_mel = np.log(mel + floor / N_MEL_BANDS)
    flux = np.maximum(np.diff(log_mel, axis=0, prepend=log_mel[:1]), 0.0).sum(axis=1)
    mfcc = dct(log_mel, type=2, axis=1, norm="ortho")[:, :N_MFCC]
    columns = [mfcc.reshape(rows, -1), np.log(speech + floor).reshape(rows, -1), flux.reshape(rows, -1)]
    return np.concatenate(columns, axis=1).astype(np.float32)


def heard_frames(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """``(n_frames,)`` whether each frame has any sound at all.

    A frame of exact digital zeros is not a quiet room, whose noise floor never reads exactly 0: it is
    audio that is not there — a stream that starts late or ends early, a muted edit, the gap left by
    shifting a track. Paired with moving or closed lips it says nothing about sync, so it is scored
    like audio beyond the track's ends.
    """
    samples = np.asarray(audio).reshape(-1)[: n_frames * SAMPLES_PER_FRAME]
    heard = np.zeros(n_frames, dtype=bool)
    full = len(samples) // SAMPLES_PER_FRAME
    heard[:full] = np.any(samples[: full * SAMPLES_PER_FRAME].reshape(full, SAMPLES_PER_FRAME) != 0, axis=1)
    if full < n_frames and len(samples) > full * SAMPLES_PER_FRAME:
        heard[full] = np.any(samples[full * SAMPLES_PER_FRAME :] != 0)
    return heard

