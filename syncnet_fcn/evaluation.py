"""The offset-accuracy protocol (REFERENCE §5), for any engine.

A clip is copied with its audio shifted at sample level by each of :data:`BENCHMARK_SHIFTS` frames;
delaying the audio by *S* moves a reading from *B* to *B − S*, so a copy's expected reading is
``own_offset − S``. A reading is correct within ±:data:`TOLERANCE` frame. Besides the clip-level reading
(every window of the track judged together) the protocol judges every run of *K* consecutive windows
(:data:`CONTEXTS`), and, for clips whose own offset is unknown, *relative* accuracy: the shifted copy
against the engine's own reading of the unshifted copy.

Corpora come from the clip names of ``../shared/clips/manifest.json`` (:func:`corpus_of`); the clips of
in-sync research corpora have own offset 0, the ``syncnet_example`` family its documented values.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .track_sync import start_multi_audio
from .media import track_audio
from .report import main_track_rank

BENCHMARK_SHIFTS = (-12, -7, -3, 0, 4, 9)
CONTEXTS = (5, 15, 50)
TOLERANCE = 1

# File-name prefix → corpus. Order matters: the first matching prefix wins.
CORPUS_PREFIXES = (
    ("gen_", "generated"),
    ("syncnet", "syncnet_example"),
    ("grid_", "grid"),
    ("lrs2_", "lrs2"),
    ("deeplipreading", "lrs2"),
    ("pcavs_", "voxceleb2"),
    ("lrw_", "lrw"),
)
#: research corpora published in sync (REFERENCE §7, issue 3): own offset 0
IN_SYNC_CORPORA = ("grid", "lrs2", "voxceleb2", "lrw")
#: corpora presumed in sync for scoring, but not evidence for calibration: generators mean to be in
#: sync, and how well they manage is what their clips test
PRESUMED_IN_SYNC = ("generated",)
#: clips presumed in sync whose own offset three independent measures put 1.5 frames or more from 0
#: (``benchmarks/own_offsets.py``; README): the benchmark keeps their presumed 0 and also reports the
#: real clips without them
CONTESTED_CLIPS = ("pcavs_796100172.mp4", "pcavs_517600055.mp4", "pcavs_741400163.mp4")
#: accuracy by the length of the track read (frames at 25 fps): (label, shortest, longest)
LENGTH_BUCKETS = (("<= 1 s", 0, 25), ("1-2 s", 26, 50), ("2-5 s", 51, 125), ("> 5 s", 126, None))
#: documented own offsets (REFERENCE §1, §7)
DOCUMENTED_OFFSETS = {
    "syncnet_example.avi": 3,
    "syncnetfcn_test_offset5.avi": 3 - 5,
    "syncnetfcn_test_offset12.avi": 3 - 12,
}


def corpus_of(file_name: str) -> str:
    """``grid``, ``lrs2``, ``voxceleb2``, ``lrw``, ``syncnet_example``, ``generated`` or ``other``."""
    name = Path(file_name).name
    for prefix, corpus in CORPUS_PREFIXES:
        if name.startswith(prefix):
            return corpus
    return "other"


def own_offset(file_name: str) -> int | None:
    """The clip's own offset in frames when documented or implied by its corpus, else ``None``."""
    name = Path(file_name).name
    if name in DOCUMENTED_OFFSETS:
        return DOCUMENTED_OFFSETS[name]
    return 0 if corpus_of(name) in IN_SYNC_CORPORA + PRESUMED_IN_SYNC else None


def is_correct(reading: int, expected: int, tolerance: int = TOLERANCE) -> bool:
    return abs(int(reading) - int(expected)) <= tolerance


def context_accuracy(dists: np.ndarray, expected: int, context: int, max_offset: int = 15) -> float:
    """Fraction of the ``context``-window runs of ``dists`` whose averaged argmin is within tolerance."""
    from .scoring import context_offsets

    offsets = context_offsets(dists, context, max_offset)
    return float(np.mean(np.abs(offsets - expected) <= TOLERANCE))


# ----------------------------------------------------------------------------------------------------
# results


@dataclass
class ShiftResult:
    """One engine's reading of one shifted copy of one clip."""

    clip: str
    corpus: str
    generated: bool
    shift: int
    offset: int | None  # the clip-level reading (None: no track)
    expected: int | None  # own_offset - shift; None when the own offset is unknown or beyond the search
    unshifted: int | None  # the same engine's reading of the unshifted copy
    confidence: float | None = None
    reliable: bool | None = None
    context_correct: dict = field(default_factory=dict)  # {K: fraction of K-window runs correct}
    seconds: float = 0.0
    frames: int | None = None  # length of the track read (the main one)

    @property
    def correct(self) -> bool | None:
        if self.expected is None or self.offset is None:
            return None if self.expected is None else False
        return is_correct(self.offset, self.expected)

    @property
    def relative_correct(self) -> bool | None:
        """Against the engine's own unshifted reading; undefined for the unshifted copy itself."""
        if self.shift == 0 or self.unshifted is None:
            return None
        if self.offset is None:
            return False
        return is_correct(self.offset, self.unshifted - self.shift)


def _rate(values: Iterable) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"n": 0, "accuracy": None}
    return {"n": len(values), "accuracy": float(np.mean(values))}


def summarize_results(results: Sequence[ShiftResult], contexts: Sequence[int] = CONTEXTS) -> dict:
    """Accuracy figures for a set of results (normally the real clips' or the generated ones').

    ``clip_level``: copies with a known expected reading, read within ±1. ``context_K``: mean over those
    copies of the fraction of K-window runs read within ±1. ``relative``: shifted copies against the
    unshifted reading, every clip. ``in_sync_zero``: unshifted copies of in-sync corpora read 0 ± 1
    (no reading counts as a miss). ``flagged_reliable``: the share of copies with a known expected
    reading that the engine calls reliable, and ``clip_level_if_reliable`` the clip-level accuracy of
    those alone — what a user who trusts only readings marked reliable gets, and how often.
    """
    known = [r for r in results if r.expected is not None]
    summary = {
        "copies": len(results),
        "clips": len({r.clip for r in results}),
        "clip_level": _rate(r.correct for r in known),
        "relative": _rate(r.relative_correct for r in results),
        "flagged_reliable": _rate(r.reliable for r in known),
        "clip_level_if_reliable": _rate(r.correct for r in known if r.reliable),
    }
    for k in contexts:
        summary[f"context_{k}"] = _rate(r.context_correct.get(k) for r in known)
    in_sync = [r for r in results if r.shift == 0 and r.corpus in IN_SYNC_CORPORA]
    summary["in_sync_zero"] = _rate(r.offset is not None and is_correct(r.offset, 0) for r in in_sync)
    return summary


def summarize_by_corpus(results: Sequence[ShiftResult], contexts: Sequence[int] = CONTEXTS) -> dict:
    groups = defaultdict(list)
    for r in results:
        groups[r.corpus].append(r)
    return {corpus: summarize_results(rs, contexts) for corpus, rs in sorted(groups.items())}


def length_bucket(frames: int | None) -> str | None:
    """The :data:`LENGTH_BUCKETS` label of a track of ``frames`` frames."""
    if frames is None:
        return None
    for label, low, high in LENGTH_BUCKETS:
        if frames >= low and (high is None or frames <= high):
            return label
    return None


def summarize_by_length(results: Sequence[ShiftResult], contexts: Sequence[int] = CONTEXTS) -> dict:
    """Accuracy per :data:`LENGTH_BUCKETS` bucket of the main track's length (copies without a track
    are left out: they have no length)."""
    out = {}
    for label, _low, _high in LENGTH_BUCKETS:
        members = [r for r in results if length_bucket(r.frames) == label]
        if members:
            out[label] = summarize_results(members, contexts)
    return out


def benchmark_summary(results: Sequence[ShiftResult], contexts: Sequence[int] = CONTEXTS) -> dict:
    """Real and generated clips reported separately, each with a per-corpus and a per-length
    breakdown; the real clips also without :data:`CONTESTED_CLIPS`."""
    out = {}
    for label, generated in (("real", False), ("generated", True)):
        subset = [r for r in results if r.generated == generated]
        out[label] = {
            "overall": summarize_results(subset, contexts),
            "by_corpus": summarize_by_corpus(subset, contexts),
            "by_length": summarize_by_length(subset, contexts),
        }
    uncontested = [r for r in results if not r.generated and r.clip not in CONTESTED_CLIPS]
    out["real"]["without_contested"] = summarize_results(uncontested, contexts)
    return out


def format_summary(summary: dict, contexts: Sequence[int] = CONTEXTS) -> str:
    """A plain-text table of :func:`benchmark_summary`'s output."""

    def pct(rate):
        return "   -  " if rate["accuracy"] is None else f"{100 * rate['accuracy']:5.1f}%"

    header = f"{'group':<22}{'clips':>6}{'copies':>7}  {'clip':>6}" + "".join(f"  {'K=' + str(k):>6}" for k in contexts)
    header += f"  {'relat.':>6}  {'0±1':>6}  {'reliab.':>7}  {'if rel.':>7}"
    lines = []
    for label in ("real", "generated"):
        block = summary.get(label)
        if not block or block["overall"]["copies"] == 0:
            continue
        lines += [header, "-" * len(header)]
        rows = [(f"{label} (all)", block["overall"])]
        if "without_contested" in block:
            rows.append(("  without contested", block["without_contested"]))
        rows += [(f"  {c}", s) for c, s in block["by_corpus"].items()]
        rows += [(f"  length {b}", s) for b, s in block.get("by_length", {}).items()]
        for name, s in rows:
            line = f"{name:<22}{s['clips']:>6}{s['copies']:>7}  {pct(s['clip_level'])}"
            line += "".join(f"  {pct(s[f'context_{k}'])}" for k in contexts)
            line += f"  {pct(s['relative'])}  {pct(s['in_sync_zero'])}"
            line += f"   {pct(s['flagged_reliable'])}   {pct(s['clip_level_if_reliable'])}"
            lines.append(line)
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# running an engine on shifted copies


def read_shifted_copies(
    engine,
    video: str | Path,
    tracks: Sequence,
    audio: np.ndarray,
    shifts: Sequence[int] = BENCHMARK_SHIFTS,
    max_offset: int = 15,
):
    """``{shift: [TrackSync per track]}``: the engine's readings of every track under each audio shift."""
    from .crops import iter_track_crops
    from .media import shift_audio

    shifted = [shift_audio(audio, s) for s in shifts]
    scorers = {}
    for t in tracks:
        spans = [track_audio(a, t.start_frame, t.n_frames) for a in shifted]
        scorers[t.track_id] = start_multi_audio(engine, spans, t.n_frames, max_offset)
    for track_id, _first, crops in iter_track_crops(video, tracks, size=224):
        scorers[track_id].push(crops)
    per_track = {t.track_id: scorers[t.track_id].finish() for t in tracks}
    return {s: [per_track[t.track_id][i] for t in tracks] for i, s in enumerate(shifts)}


def main_track_index(syncs: Sequence) -> int:
    """The track a report would call main (:func:`syncnet_fcn.report.main_track_rank`)."""
    return max(range(len(syncs)), key=lambda i: main_track_rank(syncs[i]))


def read_clip(pipe, video: str | Path, shifts: Sequence[int] = BENCHMARK_SHIFTS) -> tuple[dict, float]:
    """``({shift: [TrackSync per track]}, seconds per copy)``: the pipeline's (first) engine on every
    shifted copy of one clip (the unshifted one always included)."""
    from .media import load_audio

    if 0 not in shifts:
        shifts = (0, *shifts)
    engine = next(iter(pipe.engines.values()))
    started = time.perf_counter()
    tracks = pipe.find_tracks(video)
    audio = load_audio(video)
    readings = read_shifted_copies(engine, video, tracks, audio, shifts, pipe.max_offset) if tracks else {}
    return readings, (time.perf_counter() - started) / len(shifts)


def evaluate_clip(
    pipe,
    video: str | Path,
    shifts: Sequence[int] = BENCHMARK_SHIFTS,
    contexts: Sequence[int] = CONTEXTS,
    generated: bool = False,
) -> list[ShiftResult]:
    """Every shifted copy of one clip, read by the pipeline's (first) engine."""
    if 0 not in shifts:
        shifts = (0, *shifts)
    readings, seconds = read_clip(pipe, video, shifts)
    return judge_readings(Path(video).name, readings, shifts, contexts, generated, pipe.max_offset, seconds)


def judge_readings(
    name: str,
    readings: dict,
    shifts: Sequence[int],
    contexts: Sequence[int] = CONTEXTS,
    generated: bool = False,
    max_offset: int = 15,
    seconds: float = 0.0,
) -> list[ShiftResult]:
    """Score one clip's readings ``{shift: [TrackSync per track]}`` (:func:`read_clip`, or readings
    stored earlier and recombined offline) against the protocol's expected offsets. A clip without
    a face track (empty ``readings``) counts as a miss on every shift."""
    # the manifest's word decides what is generated, whatever the file is called
    corpus = "generated" if generated else corpus_of(name)
    own = own_offset(name) if corpus_of(name) == corpus else (0 if generated else own_offset(name))

    def main_of(shift):
        syncs = readings.get(shift) or []
        return syncs[main_track_index(syncs)] if syncs else None

    base = main_of(0)
    results = []
    for shift in shifts:
        sync = main_of(shift)
        expected = None if own is None else own - shift
        if expected is not None and abs(expected) > max_offset:
            # the truth lies outside the search: no engine can read it; judged relatively only
            expected = None
        contexts_ok = {}
        if sync is not None and expected is not None and sync.dists is not None:
            contexts_ok = {k: context_accuracy(sync.dists, expected, k, max_offset) for k in contexts}
        results.append(
            ShiftResult(
                clip=name,
                corpus=corpus,
                generated=generated,
                shift=int(shift),
                offset=None if sync is None else int(sync.offset_frames),
                expected=expected,
                unshifted=None if base is None else int(base.offset_frames),
                confidence=None if sync is None else float(sync.confidence),
                reliable=None if sync is None else bool(sync.reliable),
                context_correct=contexts_ok,
                seconds=seconds,
                frames=None if sync is None else len(sync.per_frame_confidence),
            )
        )
    return results


def results_to_json(results: Sequence[ShiftResult]) -> list[dict]:
    out = []
    for r in results:
        d = asdict(r)
        d["context_correct"] = {str(k): v for k, v in r.context_correct.items()}
        d["correct"] = r.correct
        d["relative_correct"] = r.relative_correct
        out.append(d)
    return out


# ----------------------------------------------------------------------------------------------------
# calibration helpers


def subframe_minimum(curve: np.ndarray, offsets: np.ndarray) -> float:
    """Offset of the curve's minimum refined by a parabola through it and its neighbours."""
    curve = np.asarray(curve, dtype=np.float64)
    i = int(np.argmin(curve))
    if 0 < i < len(curve) - 1:
        left, mid, right = curve[i - 1 : i + 2]
        denom = left - 2 * mid + right
        if denom > 0:
            step = float(offsets[1] - offsets[0])
            return float(offsets[i]) + step * 0.5 * (left - right) / denom
    return float(offsets[i])


def robust_bias(errors: Sequence[float], clip_range: float = 3.0) -> float:
    """Median of reading-minus-truth errors, ignoring gross misses (|error| > ``clip_range`` frames)."""
    errors = np.asarray([e for e in errors if e is not None and np.isfinite(e)], dtype=np.float64)
    kept = errors[np.abs(errors - np.median(errors)) <= clip_range] if len(errors) else errors
    return float(np.median(kept)) if len(kept) else 0.0


def leave_one_corpus_out(
    errors: dict[str, float],
    corpus: Callable[[str], str] = corpus_of,
    tolerance: float = TOLERANCE,
) -> dict:
    """Is a bias fitted on some corpora right for another?

    ``errors`` maps clip → (reading − truth) before any bias correction. For each corpus the bias is
    fitted on all other corpora and applied to it; reported per corpus: that bias, the fraction of its
    clips then within tolerance, and the same with the bias fitted on everything.
    """
    groups = defaultdict(dict)
    for clip, err in errors.items():
        groups[corpus(clip)][clip] = err
    all_bias = robust_bias(list(errors.values()))
    report = {"bias_all": all_bias, "corpora": {}}
    for name, members in sorted(groups.items()):
        others = [e for c, e in errors.items() if c not in members]
        held_bias = robust_bias(others) if others else all_bias
        errs = np.array(list(members.values()))
        report["corpora"][name] = {
            "clips": len(members),
            "bias_without_it": held_bias,
            "bias_of_it": robust_bias(list(members.values())),
            "correct_with_held_out_bias": float(np.mean(np.abs(np.round(errs - held_bias)) <= tolerance)),
            "correct_with_all_bias": float(np.mean(np.abs(np.round(errs - all_bias)) <= tolerance)),
        }
    spread = [v["bias_without_it"] for v in report["corpora"].values()]
    report["held_out_bias_range"] = [float(min(spread)), float(max(spread))] if spread else None
    return report


# ----------------------------------------------------------------------------------------------------
# reliability thresholds of an engine on its weights


def wrong_audio_partner(names: Sequence[str], index: int) -> int:
    """The clip whose audio goes with clip ``index``'s face: the next one (by position) from another
    corpus — clips of one corpus may share a speaker or a recording."""
    order = list(range(index + 1, len(names))) + list(range(index))
    return next((j for j in order if corpus_of(names[j]) != corpus_of(names[index])), order[0])


def foreign_audio(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """Another clip's audio as the soundtrack of a track of ``n_samples``: repeated or cut to length."""
    return np.resize(audio, n_samples).astype(np.int16)


def wrong_pair_thresholds(true_conf: dict, wrong_conf: dict, wrong_frames: Sequence[np.ndarray]) -> dict:
    """``reliable_confidence`` (the largest wrong-pair confidence), ``speaking_threshold`` (the 95th
    percentile of wrong-pair per-frame confidences: a frame "speaks" when it beats 95 % of them),
    ``relative_speaking_threshold`` (their median: the best-matching of several faces on screen must
    at least beat a typical foreign voice) and the share of true pairs that reach the first."""
    threshold = float(max(wrong_conf.values()))
    frames = np.concatenate([np.asarray(f, float) for f in wrong_frames])
    frames = frames[np.isfinite(frames)]
    return {
        "reliable_confidence": threshold,
        "speaking_threshold": float(np.quantile(frames, 0.95)),
        "relative_speaking_threshold": float(np.median(frames)),
        "true_pairs_above_threshold": float(np.mean(np.array(list(true_conf.values())) >= threshold)),
    }


def measure_thresholds(engine, videos: Sequence[str | Path], max_offset: int = 15, progress=None) -> dict:
    """Where an engine's confidences stop meaning "this is the voice of this face", measured.

    Every video's main face track (the longest) is read with its own audio and with the audio of
    another video (:func:`wrong_audio_partner`, repeated or cut to length). ``reliable_confidence``
    is the largest confidence of a wrong pair; ``speaking_threshold`` the 95th percentile of the
    wrong pairs' per-frame confidences. Both, with every pair's reading, go in the result.
    """
    from .crops import iter_track_crops
    from .media import load_audio
    from .tracking import SHORTEST_TRACK_FRAMES, find_face_tracks

    items = []
    for path in map(Path, videos):
        try:
            tracks = find_face_tracks(path)
            audio = load_audio(path)
        except Exception:  # unreadable or silent media says nothing about thresholds
            continue
        tracks = [t for t in tracks if t.n_frames >= SHORTEST_TRACK_FRAMES]
        if tracks:
            items.append((path, max(tracks, key=lambda t: t.n_frames), audio))
    if len(items) < 2:
        raise ValueError("measuring thresholds needs at least two videos with a face track")
    names = [p.name for p, _, _ in items]
    true_conf, wrong_conf, wrong_frames = {}, {}, []
    for i, (path, track, audio) in enumerate(items):
        partner = items[wrong_audio_partner(names, i)]
        own = track_audio(audio, track.start_frame, track.n_frames)
        foreign = foreign_audio(partner[2], len(own))
        scorer = start_multi_audio(engine, [own, foreign], track.n_frames, max_offset)
        for _track_id, _first, crops in iter_track_crops(path, [track], size=224):
            scorer.push(crops)
        right, wrong = scorer.finish()
        true_conf[path.name] = float(right.confidence)
        wrong_conf[f"{path.name} + audio of {partner[0].name}"] = float(wrong.confidence)
        wrong_frames.append(wrong.per_frame_confidence)
        if progress is not None:
            progress(i + 1, len(items))
    return {
        **wrong_pair_thresholds(true_conf, wrong_conf, wrong_frames),
        "how": "each video's longest face track read with its own audio and with another video's audio "
               "(next of another corpus, repeated or cut to length); reliable_confidence = the largest "
               "wrong-pair confidence, speaking_threshold = 95th percentile of wrong-pair per-frame "
               "confidences, relative_speaking_threshold = their median",
        "wrong_audio": wrong_conf,
        "true_audio": true_conf,
    }


__all__ = [
    "BENCHMARK_SHIFTS", "CONTEXTS", "TOLERANCE", "CONTESTED_CLIPS", "LENGTH_BUCKETS", "length_bucket",
    "summarize_by_length", "IN_SYNC_CORPORA", "ShiftResult", "corpus_of", "own_offset",
    "is_correct", "context_accuracy", "summarize_results", "summarize_by_corpus", "benchmark_summary",
    "format_summary", "track_audio", "start_multi_audio", "read_shifted_copies", "main_track_index",
    "read_clip", "evaluate_clip", "judge_readings", "results_to_json", "subframe_minimum", "robust_bias", "leave_one_corpus_out",
    "wrong_audio_partner", "foreign_audio", "wrong_pair_thresholds", "measure_thresholds",
]
