"""Whose voice is this: speaker embeddings, voices enrolled from lip-confirmed speech, off-screen matching.

The embedding is Resemblyzer's GE2E speaker encoder (a 3-layer LSTM over 40 mel bands; its 17 MB
weights ship inside the ``resemblyzer`` wheel, so it works offline). Two stretches of one voice have
a cosine similarity above about 0.8, different voices below about 0.7 (measured on the project's
clips: same-speaker halves 0.81–0.98, different speakers at most 0.70), hence the 0.75 bar.

A person's voice is learnt only where the lips confirm they are the one talking (the sync engine says
that face is heard), so a voice is never enrolled from a guess. An off-screen stretch whose voice is
close to nobody enrolled is ``unknown``: it is never handed to whoever happens to be on screen.
Optional extra: ``pip install syncnet-fcn[timeline]``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .identity import EXTRA_HINT, IdentityUnavailableError

#: cosine similarity above which two stretches are the same voice
SAME_VOICE_SIMILARITY = 0.75
#: stretches shorter than this carry too little voice to embed (the encoder's window is 1.6 s)
MIN_VOICE_SECONDS = 1.0
#: longer stretches are embedded from their middle this long: the embedding has settled by then
MAX_VOICE_SECONDS = 6.0
UNKNOWN = "unknown"

_ENCODER = None


def _encoder():
    global _ENCODER
    if _ENCODER is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from resemblyzer import VoiceEncoder
        except ImportError as exc:
            raise IdentityUnavailableError(f"voice matching needs resemblyzer ({exc.name} is missing): "
                                           f"{EXTRA_HINT}") from None
        _ENCODER = VoiceEncoder("cpu", verbose=False)
    return _ENCODER


def embed_voice(audio: np.ndarray, sample_rate: int = 16000) -> np.ndarray | None:
    """Unit-length 256-d embedding of int16 (or float) mono speech; None when too little voice remains."""
    from resemblyzer import preprocess_wav

    from .engines.landmark import _one_torch_thread

    wav = np.asarray(audio)
    longest = int(MAX_VOICE_SECONDS * sample_rate)
    if len(wav) > longest:
        wav = wav[(len(wav) - longest) // 2:][:longest]
    if wav.dtype == np.int16:
        wav = wav.astype(np.float32) / 32768.0
    wav = preprocess_wav(wav.astype(np.float32), source_sr=sample_rate)  # drops pauses, evens the level
    if len(wav) < MIN_VOICE_SECONDS * 16000:
        return None
    encoder = _encoder()
    with _one_torch_thread():  # a small LSTM: faster on one thread of a busy machine
        return np.asarray(encoder.embed_utterance(wav), np.float64)


@dataclass
class VoiceGallery:
    """Voices learnt so far: label → sum of unit embeddings and their count (plain lists, for resume)."""

    threshold: float = SAME_VOICE_SIMILARITY
    voices: dict[str, dict] = field(default_factory=dict)

    def learn(self, label: str, embedding: np.ndarray) -> None:
        voice = self.voices.setdefault(label, {"sum": [0.0] * len(embedding), "count": 0})
        voice["sum"] = [float(v) for v in np.asarray(voice["sum"]) + embedding]
        voice["count"] += 1

    def match(self, embedding: np.ndarray) -> tuple[str, float]:
        """``(label, similarity)`` of the closest enrolled voice, or ``("unknown", best similarity)``."""
        best_label, best = UNKNOWN, -1.0
        for label, voice in self.voices.items():
            centre = np.asarray(voice["sum"])
            similarity = float(centre @ embedding / max(np.linalg.norm(centre), 1e-9))
            if similarity > best:
                best_label, best = label, similarity
        return (best_label, best) if best >= self.threshold else (UNKNOWN, best)

    def to_state(self) -> dict:
        return {"threshold": self.threshold, "voices": self.voices}

    @classmethod
    def from_state(cls, state: dict) -> VoiceGallery:
        return cls(threshold=float(state["threshold"]),
                   voices={k: {"sum": list(v["sum"]), "count": int(v["count"])} for k, v in state["voices"].items()})


__all__ = ["SAME_VOICE_SIMILARITY", "UNKNOWN", "VoiceGallery", "embed_voice"]
