"""Talk / sing / music / silence, second by second, on the labelled clips of ../shared/voice_kinds.

Each clip's manifest row gives its kind (``talk``, ``sing``, ``music``, ``talk+music``, ``sing+music``);
a voice over music counts as the voice (talk or sing). Where a clip's notes give the times of its
parts (stated below, copied from the notes), those times are the truth. Prints the per-second accuracy overall, per kind and per clip, a
confusion table, and the speed against real time.

The talk / sing / music model (syncnet_fcn/data/sound_kinds_lr.json) is fitted on these same clips, so
the figure printed first is NOT held out; the held-out figure (leave-one-source-out cross-validation,
from benchmarks/fit_sound_kinds.py, stored in the model's card) is printed after it.

    python benchmarks/sound_kinds.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from syncnet_fcn.sound_kinds_model import default_model  # noqa: E402
from syncnet_fcn.sound_kinds import KINDS, SAMPLE_RATE, classify_sound_kinds, default_classifier, kind_at  # noqa: E402

DEFAULT_DIR = REPO.parent / "shared" / "voice_kinds"

# Clips whose manifest notes state when the kind changes: (start, end, kind), from the notes' own words.
PARTS_FROM_NOTES = {
    # "ALTERNATING not overlapping: ~0-1 s music/tones, 1-3 s speech, 3-5 s music, 5-7 s speech"
    "pyAudioAnalysis__speech_music_sample.wav": [(0, 1, "music"), (1, 3, "talk"), (3, 5, "music"), (5, 7, "talk")],
}


def load_mono_16k(path: Path) -> np.ndarray:
    """Any audio or video file's first audio stream as int16 mono at 16 kHz."""
    with av.open(str(path)) as container:
        stream = next(s for s in container.streams if s.type == "audio")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        chunks = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


def truth_per_second(row: dict, duration: float) -> list[str | None]:
    """The expected kind of each whole second (None: not scored)."""
    seconds = int(np.floor(duration))
    parts = PARTS_FROM_NOTES.get(row["file"])
    if parts is None:
        voice = row["kind"].split("+")[0]  # talk+music -> talk, sing+music -> sing
        return [voice] * seconds
    # the stated changes fall on whole seconds, so each second lies in one part
    return [next((k for a, b, k in parts if a <= s + 0.5 < b), None) for s in range(seconds)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    rows = json.loads((args.dir / "manifest.json").read_text())
    default_classifier()  # load once, outside the timing
    confusion = np.zeros((len(KINDS), len(KINDS)), dtype=int)
    per_clip = []
    audio_s = compute_s = 0.0
    for row in rows:
        audio = load_mono_16k(args.dir / row["file"])
        duration = audio.size / SAMPLE_RATE
        t0 = time.perf_counter()
        spans = classify_sound_kinds(audio)
        compute_s += time.perf_counter() - t0
        audio_s += duration
        truth = truth_per_second(row, duration)
        right = scored = 0
        for s, expected in enumerate(truth):
            if expected is None:
                continue
            got = kind_at(spans, s + 0.5)
            confusion[KINDS.index(expected), KINDS.index(got)] += 1
            scored += 1
            right += got == expected
        per_clip.append({"file": row["file"], "kind": row["kind"], "seconds": scored, "right": right,
                         "spans": [sp.to_dict() for sp in spans]})

    total = int(confusion.sum())
    correct = int(np.trace(confusion))
    print(f"per-second accuracy: {correct}/{total} = {100 * correct / max(total, 1):.1f} %  "
          f"({len(rows)} clips, {audio_s:.0f} s of audio, {audio_s / max(compute_s, 1e-9):.0f}x real time)"
          "  [model fitted on these clips: not held out]")
    card = default_model().card
    if card:
        print(f"held out: {card['held_out']}; per kind "
              + ", ".join(f"{k} {v} %" for k, v in card["held_out_per_kind"].items())
              + "  (python benchmarks/fit_sound_kinds.py re-measures)")
    print("\ntruth \\ read  " + " ".join(f"{k:>8s}" for k in KINDS) + "   right")
    for i, kind in enumerate(KINDS):
        n = confusion[i].sum()
        if n:
            print(f"{kind:13s} " + " ".join(f"{v:8d}" for v in confusion[i]) + f"   {100 * confusion[i, i] / n:5.1f} %")
    print("\nclip                                          kind         right")
    for clip in per_clip:
        kinds = ",".join(dict.fromkeys(sp["type"] for sp in clip["spans"]))
        print(f"{clip['file'][:45]:45s} {clip['kind']:12s} {clip['right']:3d}/{clip['seconds']:<3d}  read: {kinds}")
    if args.json:
        args.json.write_text(json.dumps({"accuracy": correct / max(total, 1), "seconds": total,
                                         "confusion": confusion.tolist(), "kinds": KINDS, "clips": per_clip},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
