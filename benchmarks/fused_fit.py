"""Fit the ``fused`` engine on training footage: member weights, reliability bar, shortest trusted track.

Training clips only (``../shared/train/harvest2``: about 150 speakers the stored models never trained
on), never the benchmark clips. Clips whose speaker may also appear among the benchmark clips (the
manifest's GRID, LRS2, LRW and VoxCeleb2 speaker keys) are left out.

    python benchmarks/fused_fit.py extract --cache /work/cache/fused/train   # runs both engines (long)
    python benchmarks/fused_fit.py fit --cache /work/cache/fused/train       # offline: writes data/fused.json
    python benchmarks/fused_fit.py extract --only landmark --cache DIR        # after retraining one member
    python benchmarks/fused_fit.py fit --unseen-only --cache DIR              # speakers no member trained on

``extract`` reads each clip's longest face track with both member engines, with its audio shifted at
sample level by :data:`FIT_SHIFTS` frames and with another clip's audio (a wrong pair), and stores the
members' readings, one file per clip. ``fit`` then works from those files alone:

* weights: the landmark share ``w`` (fcn gets ``1 - w``) on a grid, scored by the mean of clip-level
  and 15-frame-context accuracy over the shifted copies (clips whose two members agree on an own
  offset beyond ±1 frame are out of sync as published and left out of the score);
* ``reliable_confidence``: the largest fused confidence of a wrong pair;
* ``shortest_reliable_frames``: every track cut into pieces of L frames; the shortest L from which on
  readings that pass the confidence bar are right at least :data:`RELIABLE_TARGET` of the time;
  ``decisive_frames``: the shortest L at which readings with the right voice reach the bar at least half as often as whole
  training tracks do (shorter tracks are
  reported as too short to decide);
* speaking thresholds from the wrong pairs' per-frame confidences, as for the other engines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from syncnet_fcn.engines.base import TrackSync  # noqa: E402
from syncnet_fcn.engines.fused import FUSION_PATH, MEMBERS, file_sha256, fuse_readings  # noqa: E402

TRAIN_DIR = REPO.parent / "shared" / "train" / "harvest2"
#: shifts of the fit (not the benchmark's −12, −7, −3, 0, +4, +9)
FIT_SHIFTS = (-10, -5, -2, 0, 3, 7)
#: speaker keys that may name a speaker of the benchmark clips
EXCLUDED_SPEAKER_KEYS = ("GRID", "LRS2clip", "VOX2", "LRWclip")
WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)
PIECE_FRAMES = (10, 15, 20, 25, 30, 40, 50, 75, 100)
RELIABLE_TARGET = 0.98
#: a piece length is judged on at least this many confident pieces
MIN_JUDGED_PIECES = 10
MAX_OFFSET = 15


def training_clips(train_dir: Path = TRAIN_DIR, unseen_only: bool = False) -> list[dict]:
    """The fit's clips; ``unseen_only``: only those of speakers the landmark members never trained on
    (their held-out split), since a member reads its own training speakers better than new ones."""
    manifest = json.loads((train_dir / "manifest.json").read_text())
    entries = [e for e in manifest
               if e["speaker_key"].split(":")[0] not in EXCLUDED_SPEAKER_KEYS and (train_dir / e["file"]).is_file()]
    if unseen_only:
        unseen = landmark_unseen_files(train_dir)
        entries = [e for e in entries if e["file"] in unseen]
    return entries


def landmark_unseen_files(train_dir: Path = TRAIN_DIR) -> set[str]:
    """File names of ``train_dir`` in the held-out half of the landmark members' speaker split."""
    from syncnet_fcn.training_corpus import list_training_clips, split_by_speaker

    split = split_by_speaker(list_training_clips(train_dir.parent))
    return {c.path.name for c in split.validation if c.path.parent == train_dir}


# ----------------------------------------------------------------------------------------------------
# extract: both members on every clip (slow; resumable)


def member_stamp(name: str) -> str:
    """What a member's readings depend on (its stored model files), to tell stale cached readings."""
    if name == "landmark":
        from syncnet_fcn.landmark.models import CALIBRATION_PATH, MODEL_PATH

        return file_sha256(MODEL_PATH)[:16] + file_sha256(CALIBRATION_PATH)[:16]
    from syncnet_fcn.engines.fused import FCN_MEMBER_WEIGHTS
    from syncnet_fcn.weights import resolve_weights

    return file_sha256(resolve_weights(FCN_MEMBER_WEIGHTS))[:32]


def replace_member(old: TrackSync, fresh: TrackSync, member: str) -> bool:
    """Swap ``member``'s reading inside a stored fused reading; False when the two read different tracks."""
    if len(old.per_frame_confidence) != len(fresh.per_frame_confidence):
        return False
    old.extra["members"][member] = fresh
    return True


def extract(cache: Path, train_dir: Path = TRAIN_DIR, limit: int | None = None, only: str | None = None,
            unseen_only: bool = False) -> None:
    """Both members' readings of every training clip; with ``only``, re-read just that member (after it
    was retrained) into the clips already cached, keeping the other member's readings."""
    from syncnet_fcn.crops import iter_track_crops
    from syncnet_fcn.engines.fused import FusedEngine
    from syncnet_fcn.evaluation import foreign_audio
    from syncnet_fcn.media import load_audio, shift_audio, track_audio
    from syncnet_fcn.pipeline import SyncPipeline

    every = training_clips(train_dir)
    chosen = training_clips(train_dir, unseen_only)
    # a fixed mixed order, so that a partial extraction still covers every source page
    entries = sorted(chosen, key=lambda e: hashlib.sha1(e["file"].encode()).hexdigest())[:limit]
    engine = FusedEngine.from_weights(None)
    if only is not None:
        engine = FusedEngine({only: engine.members[only]}, engine.fusion)
        stamp = member_stamp(only)
    pipe = SyncPipeline(engine="landmark")  # its face tracking only
    cache.mkdir(parents=True, exist_ok=True)
    for i, entry in enumerate(entries):
        out = cache / f"{entry['file']}.pkl"
        if only is None and out.is_file():
            continue
        if only is not None:
            if not out.is_file():
                continue
            stored = pickle.loads(out.read_bytes())
            if stored.get("stamps", {}).get(only) == stamp:
                continue
            if stored.get("wrong_audio_of") is not None:
                partner = next(e for e in every if e["file"] == stored["wrong_audio_of"])
        # the wrong pair: the next clip from another source page (another recording, another speaker)
        if only is None:
            partner = next(e for e in every[i + 1:] + every[:i] if e["source_repo"] != entry["source_repo"])
        path = train_dir / entry["file"]
        started = time.perf_counter()
        try:
            tracks = pipe.find_tracks(path)
            audio = load_audio(path)
            foreign = load_audio(train_dir / partner["file"])
        except Exception as exc:  # an unreadable clip says nothing about the fit
            print(f"[{i + 1}/{len(entries)}] {entry['file']}: skipped ({exc})", file=sys.stderr)
            continue
        if not tracks:
            print(f"[{i + 1}/{len(entries)}] {entry['file']}: no face track", file=sys.stderr)
            continue
        track = max(tracks, key=lambda t: t.n_frames)
        audios = [track_audio(shift_audio(audio, s), track.start_frame, track.n_frames) for s in FIT_SHIFTS]
        audios.append(foreign_audio(foreign, len(audios[0])))
        try:
            scorer = engine.start_tracks_multi_audio(audios, track.n_frames, MAX_OFFSET)
        except Exception as exc:  # e.g. shorter than an engine's minimum
            print(f"[{i + 1}/{len(entries)}] {entry['file']}: skipped ({exc})", file=sys.stderr)
            continue
        for _track_id, _first, crops in iter_track_crops(path, [track], size=224):
            scorer.push(crops)
        readings = [r.extra["members"] for r in scorer.finish()]
        if only is not None:
            if track.n_frames != stored["n_frames"]:
                print(f"[{i + 1}/{len(entries)}] {entry['file']}: another track than the cached one, kept stale",
                      file=sys.stderr)
                continue
            for members, fresh in zip([*stored["shifts"].values(), stored["wrong"]], readings):
                members[only] = fresh[only]
            stored.setdefault("stamps", {})[only] = stamp
            out.write_bytes(pickle.dumps(stored))
            print(f"[{i + 1}/{len(entries)}] {entry['file']} {only} re-read {time.perf_counter() - started:.1f} s",
                  file=sys.stderr, flush=True)
            continue
        payload = {
            "file": entry["file"], "speaker_key": entry["speaker_key"], "n_frames": track.n_frames,
            "shifts": dict(zip(FIT_SHIFTS, readings[:-1])), "wrong": readings[-1], "wrong_audio_of": partner["file"],
            "stamps": {name: member_stamp(name) for name in MEMBERS},
        }
        out.write_bytes(pickle.dumps(payload))
        print(f"[{i + 1}/{len(entries)}] {entry['file']} {track.n_frames} frames "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------
# fit: offline, from the stored readings


def load_cache(cache: Path) -> list[dict]:
    return [pickle.loads(p.read_bytes()) for p in sorted(cache.glob("*.pkl"))]


def own_offset_disagrees(item: dict) -> bool:
    """Both members read the unshifted copy at the same offset beyond ±1: out of sync as published."""
    offsets = [item["shifts"][0][m].offset_frames for m in MEMBERS if item["shifts"][0][m].min_dist is not None]
    return len(offsets) == len(MEMBERS) and abs(offsets[0] - offsets[1]) <= 1 and abs(np.mean(offsets)) > 1.5


def _fuse(members: dict, weights: dict, n_frames: int, bar=None) -> TrackSync:
    return fuse_readings(members, weights, MAX_OFFSET, n_frames, {"reliable_confidence": bar})


def weights_of(w: float) -> dict:
    return {"landmark": float(w), "fcn": float(1.0 - w)}


def score_weights(items: list[dict], weights: dict) -> dict:
    """Clip-level and 15-frame-context accuracy of the fused reading over every shifted copy."""
    from syncnet_fcn.evaluation import context_accuracy, is_correct

    clip, ctx = [], []
    for item in items:
        for shift, members in item["shifts"].items():
            expected = -shift
            sync = _fuse(members, weights, item["n_frames"])
            clip.append(is_correct(sync.offset_frames, expected))
            ctx.append(context_accuracy(sync.dists, expected, 15, MAX_OFFSET))
    return {"clip_level": float(np.mean(clip)), "context_15": float(np.mean(ctx)),
            "score": float((np.mean(clip) + np.mean(ctx)) / 2), "copies": len(clip)}


def cut(sync: TrackSync, start: int, frames: int) -> TrackSync:
    """The member reading of ``frames`` frames from ``start``: its windows only, re-summarised."""
    from syncnet_fcn.scoring import summarize

    windows = frames - 4
    piece = summarize(sync.dists[start : start + windows], MAX_OFFSET, n_frames=frames)
    return piece


def pieces(items: list[dict], frames: int, weights: dict, bar: float | None, use_wrong: bool = False):
    """``[(correct, reliable)]`` over every ``frames``-frame piece (non-overlapping) of every copy."""
    out = []
    for item in items:
        copies = [("wrong", item["wrong"])] if use_wrong else list(item["shifts"].items())
        for shift, members in copies:
            if any(m.min_dist is None for m in members.values()):
                continue
            windows = min(m.dists.shape[0] for m in members.values())
            for start in range(0, windows - (frames - 4) + 1, frames):
                cut_members = {n: cut(m, start, frames) for n, m in members.items()}
                sync = _fuse(cut_members, weights, frames, bar)
                correct = None if use_wrong else abs(sync.offset_frames + shift) <= 1
                out.append((correct, sync.reliable, sync.confidence))
    return out


def fit(cache: Path, out_path: Path = FUSION_PATH, unseen_only: bool = False) -> dict:
    items = [i for i in load_cache(cache) if all(m.min_dist is not None for m in i["shifts"][0].values())]
    if unseen_only:
        unseen = landmark_unseen_files()
        items = [i for i in items if i["file"] in unseen]
    excluded = [i["file"] for i in items if own_offset_disagrees(i)]
    items_in_sync = [i for i in items if i["file"] not in excluded]
    print(f"{len(items)} clips read by both members; {len(excluded)} out of sync as published, left out of the scores")

    grid = {float(w): score_weights(items_in_sync, weights_of(w)) for w in WEIGHT_GRID}
    for w, s in grid.items():
        print(f"  landmark {w:.2f} / fcn {1 - w:.2f}: clip {100 * s['clip_level']:.1f} %  K=15 {100 * s['context_15']:.1f} %")
    best = max(grid, key=lambda w: (grid[w]["score"], -abs(w - 0.5)))
    weights = weights_of(best)

    wrong = {i["file"]: _fuse(i["wrong"], weights, i["n_frames"]) for i in items}
    wrong_conf = {f"{i['file']} + audio of {i['wrong_audio_of']}": float(wrong[i["file"]].confidence) for i in items}
    bar = float(max(wrong_conf.values()))
    frames = np.concatenate([np.asarray(s.per_frame_confidence, float) for s in wrong.values()])
    true_conf = [_fuse(i["shifts"][0], weights, i["n_frames"]).confidence for i in items_in_sync]

    by_length = {}
    for length in PIECE_FRAMES:
        rows = pieces(items_in_sync, length, weights, bar)
        wrong_rows = pieces(items, length, weights, bar, use_wrong=True)
        reliable = [c for c, r, _ in rows if r]
        by_length[length] = {
            "pieces": len(rows),
            "accuracy": float(np.mean([c for c, _, _ in rows])) if rows else None,
            "flagged_reliable": float(np.mean([r for _, r, _ in rows])) if rows else None,
            "accuracy_if_reliable": float(np.mean(reliable)) if reliable else None,
            "reliable_pieces": len(reliable),
            "wrong_pairs_passing_bar": float(np.mean([r for _, r, _ in wrong_rows])) if wrong_rows else None,
        }
        b = by_length[length]
        print(f"  {length:>3} frames: {b['pieces']:>5} pieces, right {_pct(b['accuracy'])}, reliable "
              f"{_pct(b['flagged_reliable'])}, right if reliable {_pct(b['accuracy_if_reliable'])} "
              f"({b['reliable_pieces']}), "
              f"wrong pairs over the bar {_pct(b['wrong_pairs_passing_bar'])}")
    # the shortest length from which on the confidence bar alone keeps reliable readings right enough
    # (lengths with too few confident pieces to judge do not count against it)
    shortest = PIECE_FRAMES[0]
    for length in reversed(PIECE_FRAMES):
        b = by_length[length]
        if b["reliable_pieces"] >= MIN_JUDGED_PIECES and b["accuracy_if_reliable"] < RELIABLE_TARGET:
            # (when even the longest pieces fall short, the longest tested length is the bar)
            shortest = PIECE_FRAMES[min(PIECE_FRAMES.index(length) + 1, len(PIECE_FRAMES) - 1)]
            break
    # the length from which most right readings reach the bar: shorter is "too short to decide"
    # (half as often as whole training tracks do: shorter tracks give too little evidence to decide)
    full_share = float(np.mean(np.array(true_conf) >= bar))
    decisive = next((n for n in PIECE_FRAMES if (by_length[n]["flagged_reliable"] or 0) >= full_share / 2), None)

    fusion = {
        "weights": weights,
        "fcn_weights": "syncnet_light.pt",
        "fcn_weights_sha256": file_sha256(REPO / "checkpoints" / "syncnet_light.pt"),
        "reliable_confidence": bar,
        "shortest_reliable_frames": shortest,
        "decisive_frames": decisive,
        "speaking_threshold": float(np.quantile(frames[np.isfinite(frames)], 0.95)),
        "relative_speaking_threshold": float(np.median(frames[np.isfinite(frames)])),
        # a new fit has not been benchmarked yet: accuracy.py --engine fused --set-auto decides
        "auto": False,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "how": (
            f"fitted by benchmarks/fused_fit.py on {len(items)} training clips of ../shared/train/harvest2 "
            f"(speaker keys {', '.join(EXCLUDED_SPEAKER_KEYS)} left out: they may share a speaker with the "
            f"benchmark{'; only speakers the landmark members never trained on' if unseen_only else ''}), each clip's longest face track with its audio shifted by {list(FIT_SHIFTS)} frames. "
            f"weights: the landmark share on a grid of {len(WEIGHT_GRID)} steps maximising the mean of clip-level "
            f"and 15-frame-context accuracy ({len(excluded)} clips whose members agree on an own offset beyond "
            "±1 left out of the score); reliable_confidence: the largest fused confidence with another clip's "
            "audio; shortest_reliable_frames: the shortest piece length from which on readings over that bar "
            f"are right >= {RELIABLE_TARGET:.0%} of the time; decisive_frames: the shortest piece length at which "
            "readings with the right voice reach the bar at least half as often as whole tracks do; speaking thresholds: 95th percentile and median of "
            "the wrong pairs' per-frame confidences"
        ),
        "fit": {
            "clips": len(items),
            "unseen_speakers_only": unseen_only,
            "clips_out_of_sync": excluded,
            "shifts": list(FIT_SHIFTS),
            "weight_grid": {f"{w:.2f}": s for w, s in grid.items()},
            "by_length": {str(k): v for k, v in by_length.items()},
            "true_pairs_above_bar": float(np.mean(np.array(true_conf) >= bar)),
            "wrong_audio": wrong_conf,
        },
    }
    out_path.write_text(json.dumps(fusion, indent=1) + "\n")
    print(f"weights {weights}, reliable bar {bar:.2f}, shortest reliable track {shortest} frames, most right "
          f"readings reach the bar from {decisive} frames -> {out_path}")
    return fusion


def _pct(x):
    return "  -  " if x is None else f"{100 * x:5.1f} %"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=["extract", "fit"])
    p.add_argument("--cache", type=Path, required=True, help="where the members' readings are kept (outside the repo)")
    p.add_argument("--train-dir", type=Path, default=TRAIN_DIR)
    p.add_argument("--limit", type=int, default=None, help="extract: only the first N clips")
    p.add_argument("--only", choices=MEMBERS, default=None,
                   help="extract: re-read only this member into the cached clips (after retraining it)")
    p.add_argument("--unseen-only", action="store_true",
                   help="only clips of speakers the landmark members never trained on (their held-out split)")
    p.add_argument("--out", type=Path, default=FUSION_PATH, help="fit: where the fusion goes")
    args = p.parse_args(argv)
    if args.step == "extract":
        extract(args.cache, args.train_dir, args.limit, args.only, args.unseen_only)
    else:
        fit(args.cache, args.out, args.unseen_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
