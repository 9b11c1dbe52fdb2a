"""Talk, sing or music from YAMNet's class logits: a logistic regression fitted on labelled clips.

YAMNet's own "Speech" and "Singing" scores alone mislead in two common cases (a cappella singing reads
as speech; a voice under a song gets small voice scores next to "Music"), so the decision is learnt
from a few dozen of its class logits instead of set by hand. The weights live in
``data/sound_kinds_lr.json`` with their card (what they were fitted on, the held-out figure);
``benchmarks/fit_sound_kinds.py`` refits them. Inference is numpy only.

Features per 0.96 s patch: the strongest logit of each kind's class group, the logits of the classes
named in the file (``feature_classes``), and the mean of both over the patch and its ``context``
neighbours on each side (a sung phrase or a song's bed lasts seconds, one patch can mislead).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_PATH = Path(__file__).resolve().parent / "data" / "sound_kinds_lr.json"
VOICE_KINDS = ("talk", "sing", "music")  # the model's classes, in its output order
GROUP_ORDER = ("talk", "sing", "music", "silence")

# AudioSet classes whose logits feed the model besides the group maxima: voice, singing styles and the
# music genres / instruments that songs and beds are made of.
FEATURE_CLASSES = (
    "Speech", "Singing", "Music", "Choir", "Rapping", "Humming", "Vocal music", "A capella", "Song",
    "Child singing", "Chant", "Narration, monologue", "Conversation",
    "Child speech, kid speaking", "Musical instrument", "Pop music", "Rock music", "Hip hop music",
    "Electronic music", "Background music", "Soundtrack music", "Theme music", "Piano", "Guitar", "Drum",
    "Bass guitar", "Synthesizer", "Speech synthesizer", "Silence", "Whispering", "Shout", "Music of Asia",
    "Lullaby")
CONTEXT = 2  # patches on each side in the context mean


def patch_features(logits: np.ndarray, groups: dict[str, list[int]], class_index: dict[str, int],
                   classes=FEATURE_CLASSES, context: int = CONTEXT) -> np.ndarray:
    """(N, F) features of N patches from their (N, 521) YAMNet logits."""
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 2 or len(logits) == 0:
        return np.zeros((0, 2 * (len(GROUP_ORDER) + len(classes))), np.float32)
    group_max = np.stack([logits[:, groups[k]].max(axis=1) for k in GROUP_ORDER], axis=1)
    named = logits[:, [class_index[c] for c in classes]]
    own = np.concatenate([group_max, named], axis=1)
    padded = np.pad(own, ((context, context), (0, 0)), mode="edge")
    around = np.mean([padded[i:i + len(own)] for i in range(2 * context + 1)], axis=0)
    return np.concatenate([own, around], axis=1).astype(np.float32)


class VoiceKindModel:
    """The fitted logistic regression: standardised features -> softmax over talk, sing, music."""

    def __init__(self, params: dict):
        self.classes = tuple(params["feature_classes"])
        self.context = int(params["context"])
        self.mean = np.asarray(params["mean"], np.float32)
        self.scale = np.asarray(params["scale"], np.float32)
        self.coef = np.asarray(params["coef"], np.float32)  # (3, F)
        self.intercept = np.asarray(params["intercept"], np.float32)
        self.card = params.get("card", {})
        if tuple(params["kinds"]) != VOICE_KINDS or self.coef.shape != (len(VOICE_KINDS), self.mean.size):
            raise ValueError(f"{MODEL_PATH.name}: unexpected kinds or shapes")

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        z = ((features - self.mean) / self.scale) @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, logits, groups, class_index) -> tuple[np.ndarray, np.ndarray]:
        """Per patch, an index into VOICE_KINDS and its probability."""
        p = self.probabilities(patch_features(logits, groups, class_index, self.classes, self.context))
        best = np.argmax(p, axis=1)
        return best, p[np.arange(len(p)), best]


@lru_cache(maxsize=1)
def default_model() -> VoiceKindModel:
    return VoiceKindModel(json.loads(MODEL_PATH.read_text()))
