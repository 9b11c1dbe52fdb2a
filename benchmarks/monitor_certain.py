"""Fit the monitor's "certain" bar on training footage: the landmark engine's confidence above which a
single window's reading is trusted to alert on its own (``syncnet_fcn/data/monitor_alerts.json``).

    python benchmarks/monitor_certain.py --cache /work/cache/accuracy/lm \
        --fused-cache /work/cache/refit/train                                   # writes the data file
    python benchmarks/monitor_certain.py --cache DIR --dry-run                  # prints, writes nothing

``landmark`` is read afresh from the footage cache; ``fused`` (the default engine) is fused from the
member readings that ``benchmarks/fused_fit.py extract`` stored (its audio moved by that script's
shifts, one wrong-sound pair a clip; stale member readings are left out), with the stored fusion's
weights and bars, exactly as the engine fuses.

Training footage only (``../shared/train/harvest2``, its face mesh and audio as prepared by
``python -m syncnet_fcn.landmark_training --cache DIR``), never the evaluation clips nor the streams of
``benchmarks/monitor.py``. Clips whose speaker may also appear among the evaluation clips (GRID, LRS2,
LRW, VoxCeleb2 speaker keys) are left out, as in ``fused_fit.py``.

Every track (at least :data:`MIN_FRAMES` frames: a monitor window holds a few seconds of a face at the
least) is read

* with its own sound moved by each of :data:`SHIFTS` frames at sample level (right: within ±1 frame
  of the move), and
* with the sound of :data:`PARTNERS` tracks from other source pages (another voice: every reading
  is wrong, whatever offset it gives — the stand-in for music or a voice-over over a face).

As many wrong-sound readings as moved ones: among the readings the engine calls reliable, the bar is
the lowest confidence from which on at least :data:`TARGET` of readings are right, at every higher
confidence too. The largest wrong-sound confidence is stored beside it. The bar is tied to the
engine's calibration (its ``reliable_confidence``): the monitor ignores it for another calibration.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHIFTS = (-6, -3, 0, 3, 6)  # one more than alerts need at the default threshold (2), and wider ones
PARTNERS = len(SHIFTS)
MIN_FRAMES = 50
TARGET = 0.99
#: speaker keys that may name a speaker of the evaluation clips
EXCLUDED_SPEAKER_KEYS = ("GRID", "LRS2clip", "VOX2", "LRWclip")
MAX_OFFSET = 15


def fit_tracks(footage: dict) -> list[dict]:
    from syncnet_fcn.landmark_training import usable_tracks

    clips = {c.name: c for c in footage["split"].train + footage["split"].validation}
    tracks = []
    for t in usable_tracks(footage, "train") + usable_tracks(footage, "validation"):
        clip = clips.get(t["name"])
        if clip is None or clip.corpus != "harvest2" or len(t["landmarks"]) < MIN_FRAMES:
            continue
        if any(s.split(":")[0] in EXCLUDED_SPEAKER_KEYS for s in clip.speakers):
            continue
        tracks.append({**t, "source": clip.source})
    return tracks


def read_all(tracks: list[dict], log=print) -> list[dict]:
    """One row per reading: ``{"track", "kind" ("shift"/"wrong"), "expected", "offset", "confidence",
    "reliable"}``."""
    from syncnet_fcn.evaluation import foreign_audio
    from syncnet_fcn.landmark.models import load_calibration, load_models
    from syncnet_fcn.landmark.reading import score_track
    from syncnet_fcn.landmark_training import aligned_audio
    from syncnet_fcn.media import shift_audio

    models, calibration = load_models(), load_calibration()
    rows = []
    for i, t in enumerate(tracks):
        audio = aligned_audio(t)
        # partners: the next tracks (in a fixed order) from other source pages, so another voice
        others = [u for u in tracks[i + 1:] + tracks[:i] if u["source"] != t["source"]][:PARTNERS]
        cases = [("shift", -s, shift_audio(audio, s)) for s in SHIFTS]  # delaying by s reads −s
        cases += [("wrong", None, foreign_audio(aligned_audio(u), len(audio))) for u in others]
        for kind, expected, sound in cases:
            sync = score_track(t["landmarks"], sound, MAX_OFFSET, models, calibration, appearance=t["appearance"])
            rows.append({"track": t["name"], "kind": kind, "expected": expected, "offset": int(sync.offset_frames),
                         "confidence": float(sync.confidence), "reliable": bool(sync.reliable)})
        if log and (i + 1) % 10 == 0:
            log(f"{i + 1}/{len(tracks)} tracks read", file=sys.stderr, flush=True)
    return rows


def fused_rows(cache: Path, log=print) -> tuple[list[dict], int]:
    """The fused engine's readings of fused_fit.py's stored member readings, as :func:`read_all` rows;
    each wrong-sound row weighs as much as all the moved copies of its clip (as many of each kind)."""
    import pickle

    sys.path.insert(0, str(REPO / "benchmarks"))
    from fused_fit import member_stamp

    from syncnet_fcn.engines.fused import MEMBERS, fuse_readings, load_fusion

    fusion = load_fusion()
    weights = {name: float(fusion["weights"][name]) for name in MEMBERS}
    stamps = {name: member_stamp(name) for name in MEMBERS}
    rows, clips = [], 0
    for path in sorted(cache.glob("*.pkl")):
        item = pickle.loads(path.read_bytes())
        if item.get("stamps") != stamps:
            log(f"{path.name}: member readings of other models, left out", file=sys.stderr)
            continue
        if item["speaker_key"].split(":")[0] in EXCLUDED_SPEAKER_KEYS:
            continue
        clips += 1
        cases = [("shift", -shift, members, 1.0) for shift, members in item["shifts"].items()]
        cases.append(("wrong", None, item["wrong"], float(len(item["shifts"]))))
        for kind, expected, members, weight in cases:
            sync = fuse_readings(members, weights, MAX_OFFSET, item["n_frames"], fusion)
            rows.append({"track": item["file"], "kind": kind, "expected": expected, "offset": int(sync.offset_frames),
                         "confidence": float(sync.confidence), "reliable": bool(sync.reliable), "weight": weight})
    return rows, clips


def is_right(row: dict) -> bool:
    return row["kind"] == "shift" and abs(row["offset"] - row["expected"]) <= 1


def certain_bar(rows: list[dict], target: float = TARGET) -> float:
    """The lowest confidence c such that, among reliable readings at or above any c' ≥ c, at least
    ``target`` are right (inf when even the most confident ones miss it); rows count ``weight`` times."""
    reliable = sorted((r for r in rows if r["reliable"]), key=lambda r: -r["confidence"])
    bar, right, total = float("inf"), 0.0, 0.0
    for r in reliable:  # from the most confident down
        w = r.get("weight", 1.0)
        right += w * is_right(r)
        total += w
        if right / total < target:
            break
        bar = r["confidence"]
    return bar


def summary(rows: list[dict], bar: float) -> dict:
    reliable = [r for r in rows if r["reliable"]]
    above = [r for r in reliable if r["confidence"] >= bar]
    shifted = [r for r in rows if r["kind"] == "shift"]
    wrong = [r for r in rows if r["kind"] == "wrong"]
    return {
        "readings": len(rows), "reliable": len(reliable), "reliable_right": sum(map(is_right, reliable)),
        "at_or_above_bar": len(above), "at_or_above_bar_right": sum(map(is_right, above)),
        "moved_sound_at_or_above_bar": f"{sum(r['confidence'] >= bar for r in shifted)}/{len(shifted)}",
        "moved_sound_reliable": f"{sum(r['reliable'] for r in shifted)}/{len(shifted)}",
        "wrong_sound_reliable": f"{sum(r['reliable'] for r in wrong)}/{len(wrong)}",
        "largest_wrong_sound_confidence": round(max((r["confidence"] for r in wrong), default=float("nan")), 3),
        "misread_moved_sound_reliable": sorted(round(r["confidence"], 2) for r in shifted
                                               if r["reliable"] and not is_right(r)),
    }


def main(argv=None) -> int:
    from syncnet_fcn.landmark.models import load_calibration
    from syncnet_fcn.landmark_training import prepare_footage
    from syncnet_fcn.monitor import ALERTS_PATH

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", type=Path, required=True, help="landmark_training's footage cache (outside the repo)")
    p.add_argument("--train-root", type=Path, default=REPO.parent / "shared" / "train")
    p.add_argument("--clips-dir", type=Path, default=REPO.parent / "shared" / "clips")
    p.add_argument("--fused-cache", type=Path, help="fused_fit.py extract's cache of member readings")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--rows", type=Path, help="also write every reading here (JSON)")
    args = p.parse_args(argv)

    tracks = fit_tracks(prepare_footage(args.train_root, args.clips_dir, args.cache))
    rows = read_all(tracks)
    bar = certain_bar(rows)
    facts = summary(rows, bar)
    calibration = load_calibration()
    result = {
        "landmark": {
            "certain_confidence": round(bar, 3),
            "reliable_confidence": round(float(calibration["reliable_confidence"]), 6),
            "target": TARGET,
            "measured_on": (f"{len(tracks)} harvest2 training tracks of {MIN_FRAMES}+ frames (no evaluation clip, "
                            f"speaker keys {', '.join(EXCLUDED_SPEAKER_KEYS)} left out), each with its sound moved "
                            f"by {list(SHIFTS)} frames and with the sound of {PARTNERS} tracks of other source pages"),
            "how": "lowest confidence from which on (at every higher one too) >= target of the reliable readings are "
                   "right (within ±1 frame of the move; another voice's sound is never right)",
            **facts,
            "fitted": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        }
    }
    if args.fused_cache:
        from syncnet_fcn.engines.fused import load_fusion

        f_rows, clips = fused_rows(args.fused_cache)
        f_bar = certain_bar(f_rows)
        result["fused"] = {
            "certain_confidence": round(f_bar, 3),
            "reliable_confidence": round(float(load_fusion()["reliable_confidence"]), 6),
            "target": TARGET,
            "measured_on": (f"{clips} harvest2 training clips of benchmarks/fused_fit.py (speaker keys "
                            f"{', '.join(EXCLUDED_SPEAKER_KEYS)} left out), each clip's longest face track with its "
                            "sound moved by fused_fit.py's shifts and with another page's sound (weighted as "
                            "many as the moved copies)"),
            "how": result["landmark"]["how"],
            **summary(f_rows, f_bar),
            "fitted": result["landmark"]["fitted"],
        }
    text = json.dumps(result, indent=1)
    print(text)
    if args.rows:
        args.rows.write_text(json.dumps(rows) + "\n")  # the landmark rows
    if not args.dry_run:
        ALERTS_PATH.write_text(text + "\n")
        print(f"wrote {ALERTS_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
