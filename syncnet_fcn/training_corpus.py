"""Which training footage the landmark members learn from, with whose face, and how well in sync.

``../shared/train`` holds three corpora: ``lrc_ar`` (Arabic TV word clips, face crops), ``grid_s1``
(one GRID speaker) and ``harvest2`` (about 160 speakers from demo pages of audio-visual speech papers:
LRS3/TED, LRS2 and LRW/BBC, VoxCeleb2, GRID s1–s34, VidTIMIT, phone clips; its ``manifest.json`` names
each clip's ``speaker_key``). This module decides, before any model sees a frame:

* **who speaks** (:func:`speaker_groups`): a clip's speakers from its manifest key; a key naming
  several possible speakers (``GRID:s30/s33/s34(...)``) joins them into one group;
* **what stays out of training**: speakers of the evaluation clips (:data:`EVALUATION_SPEAKERS`), the
  test sets the evaluation clips were drawn from, whose speakers may coincide with theirs
  (:data:`EVALUATION_TEST_SETS`, held out for validation instead), and clips that are the same
  recording as an evaluation clip (:func:`syncnet_fcn.recordings.find_same_recordings`);
* **how each clip is aligned** (:func:`measure_sync`): the model-free lip/energy lag
  (:mod:`syncnet_fcn.lip_lag`) of each source page's clips together, relative to the largest
  corpus's, is the audio delay applied before training; a clip whose own lag curve peaks elsewhere
  (below half its peak at that lag: lips and sound do not move together there) is dropped;
* **the held-out speakers** (:func:`split_by_speaker`): validation is a set of speaker groups the
  model never trains on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HARVEST = "harvest2"
CROPPED_CORPORA = ("lrc_ar",)  # every frame is the face already: no detection
#: Speakers seen in ``../shared/clips`` (the evaluation clips): never trained on.
EVALUATION_SPEAKERS = {
    "GRID:s1": "the GRID samples of ../shared/clips (grid_bbaf2n.mpg is grid_s1/bbaf2n; "
               "grid_nicknochnack_test_video.mp4 is s1 too)",
    "GRID:s2": "grid_id2_vcd_swwp2s.mpg",
}
#: Manifest key prefixes of test sets that evaluation clips come from (LRS2/LRW: BBC presenters,
#: VoxCeleb2: the PC-AVS clips) while the speakers are not named: a coincidence cannot be ruled out,
#: so these clips are only ever validation.
EVALUATION_TEST_SETS = ("LRS2clip:", "LRWclip:", "VOX2:")
#: A corpus whose speakers are unknown is one group, always on the training side.
TRAINING_ONLY = "training-only"
#: Lag readings are relative to this corpus (the largest): its sound is taken as in sync.
REFERENCE_CORPUS = "lrc_ar"
#: A source page whose clips read further than this from the reference (frames) is re-aligned.
ALIGN_BEYOND_FRAMES = 0.5
#: ... when it has at least this many readable clips (fewer give a noisy group reading).
MIN_GROUP_CLIPS = 8
#: A clip is kept when its lag curve at its source's lag reaches this share of the curve's peak.
KEEP_PEAK_SHARE = 0.5


@dataclass(frozen=True)
class TrainingClip:
    path: Path
    corpus: str
    speakers: tuple[str, ...]  # possible speakers (one, unless the manifest is unsure)
    source: str  # the page or corpus the file came from: clips of one source share an encoding

    @property
    def name(self) -> str:
        return f"{self.corpus}/{self.path.stem}"

    @property
    def face_crop(self) -> bool:
        return self.corpus in CROPPED_CORPORA


def speakers_of_key(key: str) -> tuple[str, ...]:
    """``"GRID:s30/s33/s34(dr-pato 800ms/ex1)"`` → ``("GRID:s30", "GRID:s33", "GRID:s34")``."""
    match = re.fullmatch(r"GRID:(s\d+(?:/s\d+)*)(\(.*\))?", key)
    if match:
        return tuple(f"GRID:{s}" for s in match.group(1).split("/"))
    return (key,)


def list_training_clips(train_root: str | Path) -> list[TrainingClip]:
    """Every clip of ``lrc_ar``, ``grid_s1`` and ``harvest2`` under ``train_root`` that exists."""
    from .media import videos_in

    root = Path(train_root)
    clips = []
    for corpus, speaker in (("lrc_ar", "lrc_ar:presenters"), ("grid_s1", "GRID:s1")):
        if (root / corpus).is_dir():
            clips += [TrainingClip(p, corpus, (speaker,), corpus) for p in videos_in(root / corpus)]
    manifest = root / HARVEST / "manifest.json"
    if manifest.exists():
        for row in json.loads(manifest.read_text()):
            path = root / HARVEST / row["file"]
            if path.exists():
                clips.append(TrainingClip(path, HARVEST, speakers_of_key(row["speaker_key"]), row["source_repo"]))
    return clips


def speaker_groups(clips: list[TrainingClip]) -> list[str]:
    """One group label per clip: clips sharing any possible speaker share a group (union–find)."""
    parent: dict[str, str] = {}

    def find(s):
        while parent.setdefault(s, s) != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    for clip in clips:
        for other in clip.speakers[1:]:
            parent[find(other)] = find(clip.speakers[0])
    return [find(c.speakers[0]) for c in clips]


def excluded_reason(clip: TrainingClip) -> str | None:
    """Why a clip never trains a model (evaluation speaker), or None."""
    for speaker in clip.speakers:
        if speaker in EVALUATION_SPEAKERS:
            return f"speaker {speaker} appears in the evaluation clips: {EVALUATION_SPEAKERS[speaker]}"
    return None


@dataclass
class Split:
    train: list[TrainingClip]
    validation: list[TrainingClip]
    excluded: dict[str, str] = field(default_factory=dict)  # clip name → why

    def describe(self) -> dict:
        def frames_note(clips):
            return {"clips": len(clips), "speaker_groups": len(set(speaker_groups(clips)))}

        return {"train": frames_note(self.train), "validation": frames_note(self.validation),
                "excluded": self.excluded}


def split_by_speaker(clips: list[TrainingClip], validation_fraction: float = 0.3, seed: int = 0) -> Split:
    """Training and validation clips with no speaker group on both sides.

    Clips of evaluation speakers are excluded; harvest2 clips of the evaluation clips' test sets are
    all validation; further harvest2 speaker groups, in a seeded random order, join validation until it
    holds ``validation_fraction`` of harvest2's usable clips. Corpora without named speakers train only.
    """
    excluded = {c.name: r for c in clips if (r := excluded_reason(c))}
    usable = [c for c in clips if c.name not in excluded]
    groups = speaker_groups(usable)
    harvest_groups = sorted({g for c, g in zip(usable, groups) if c.corpus == HARVEST})
    held = {g for c, g in zip(usable, groups) if c.corpus == HARVEST and g.startswith(EVALUATION_TEST_SETS)}
    target = validation_fraction * sum(c.corpus == HARVEST for c in usable)
    count = sum(g in held for g in groups)
    for g in np.random.default_rng(seed).permutation(harvest_groups):
        if count >= target:
            break
        if g not in held:
            held.add(str(g))
            count += groups.count(str(g))
    # a group is held out only if no training-only corpus shares it (speaker_groups joined them)
    train = [c for c, g in zip(usable, groups) if g not in held]
    validation = [c for c, g in zip(usable, groups) if g in held]
    return Split(train, validation, excluded)


# ----------------------------------------------------------------------------------------------------
# sync of the footage


def measure_sync(clips: list[TrainingClip], curve_of, log=None) -> dict:
    """The audio delay (frames) that aligns each clip with the reference corpus, or None to drop it.

    ``curve_of(name)`` gives the lip/energy lag curve of the clip's main track
    (:func:`~syncnet_fcn.lip_lag.track_lag_curve`), None when it has none. Returns ``{"delay": {name: frames | None}, "sources": {source: {...}}, "reference": float}``.
    """
    from .lip_lag import MAX_LAG, curve_reading

    curves = {clip.name: curve_of(clip.name) for clip in clips}
    by_source: dict[str, list[TrainingClip]] = {}
    for clip in clips:
        by_source.setdefault(clip.source, []).append(clip)

    def reading(members):
        found = [curves[c.name] for c in members if curves[c.name] is not None]
        return (curve_reading(np.sum(found, axis=0)), len(found)) if found else (float("nan"), 0)

    reference, _ = reading(by_source.get(REFERENCE_CORPUS, []))
    if not np.isfinite(reference):
        reference = 0.0
    delays, sources = {}, {}
    for source, members in sorted(by_source.items()):
        value, used = reading(members)
        relative = value - reference
        # delaying the sound by D lowers a reading by D: a source reading R above the reference needs D = R
        delay = relative if used >= MIN_GROUP_CLIPS and abs(relative) > ALIGN_BEYOND_FRAMES else 0.0
        dropped = 0
        for clip in members:
            curve = curves[clip.name]
            if clip.corpus != HARVEST:
                keep = True  # recorded in sync as far as is known; word clips are too short to check one by one
            elif curve is None or not np.isfinite(value):
                keep = False  # too short, or the mesh lost the face: its sync cannot be checked
            else:
                # the clip's lag curve at its source's lag (±1 frame) must reach half its own peak:
                # lips and sound of a dubbed or shifted clip move together at another lag, not there
                centre = int(np.clip(-round(value) + MAX_LAG, 1, 2 * MAX_LAG - 1))
                keep = bool(curve.max() > 0 and curve[centre - 1 : centre + 2].max() >= KEEP_PEAK_SHARE * curve.max())
            delays[clip.name] = round(float(delay), 3) if keep else None
            dropped += not keep
        sources[source] = {"clips": len(members), "read": used, "reading": round(float(value), 3),
                           "relative": round(float(relative), 3), "delay": round(float(delay), 3),
                           "dropped": dropped}
        if log:
            log(f"{source}: {used}/{len(members)} read, {relative:+.2f} frames from {REFERENCE_CORPUS}, "
                f"delay {delay:+.2f}, dropped {dropped}")
    return {"delay": delays, "sources": sources, "reference": reference}
