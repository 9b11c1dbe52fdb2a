"""``fused``: one reading from the standardised offset curves of ``landmark`` and ``fcn``.

The two engines fail on different clips (the face mesh loses a turned head, the image network a
badly lit mouth), so where they disagree a weighted sum of their curves can beat each. Every member
reads the same crops of the same tracks (the pipeline decodes once and pushes to this engine's scorer,
which hands each chunk to every member). Each member's distance matrix is centred per window and
divided by the spread of its windows, so the members speak in the same units whatever their scale; the fused matrix is their weighted sum and goes through the original's summary (offset = argmin
of the mean curve) with one change: the confidence is the curve's gap times √windows
(:func:`evidence`), so that it grows with the length of the track. The weights, the reliability bar and the shortest
track that can be trusted are fitted on training footage by ``benchmarks/fused_fit.py`` and stored with
how they were fitted in ``syncnet_fcn/data/fused.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..errors import EngineUnavailableError
from ..track_sync import start_multi_audio
from .base import OpenTrackScorer, SyncEngine, TrackScorer, TrackSync

FUSION_PATH = Path(__file__).resolve().parents[1] / "data" / "fused.json"
#: the fcn member's checkpoint when none is named: the project's light SyncNet (registry name)
FCN_MEMBER_WEIGHTS = "syncnet_light"
MEMBERS = ("landmark", "fcn")


def load_fusion(path: Path | None = None) -> dict:
    path = path or FUSION_PATH
    if not path.is_file():
        raise EngineUnavailableError(f"fused engine unavailable: its fitted weights {path.name} are missing")
    return json.loads(path.read_text())


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def standardized_dists(sync: TrackSync) -> np.ndarray | None:
    """``sync.dists`` centred per window and divided by the spread of its windows (None: no reading).

    Every window's row then has zero mean, and the whole matrix unit spread: each member speaks in
    units of its own window-to-window noise, whatever its distance scale, so a member whose curve
    stands out of its noise weighs more. Averaging any run of windows stays linear, so the context
    readings of the fused matrix are sums of the members' context readings.
    """
    if sync.dists is None or sync.min_dist is None:
        return None
    dists = np.asarray(sync.dists, dtype=np.float64)
    centred = dists - dists.mean(axis=1, keepdims=True)
    spread = float(centred.std())
    if not np.isfinite(spread) or spread <= 0:
        return None
    return centred / spread


def fuse_readings(readings: dict[str, TrackSync], weights: dict[str, float], max_offset: int, n_frames: int,
                  bars: dict | None = None) -> TrackSync:
    """The fused reading of one track from its members' readings (``{member: TrackSync}``).

    Members without a reading (no face mesh, silent audio) drop out and the others carry the reading
    alone; the result says which members it used in ``extra["members_used"]``. ``bars`` (the stored
    fit's ``reliable_confidence``, ``shortest_reliable_frames``, ``decisive_frames``) decide whether
    the reading is flagged reliable (:func:`judge_reliability`).
    """
    from ..scoring import summarize

    parts = {name: standardized_dists(sync) for name, sync in readings.items() if weights.get(name, 0) > 0}
    parts = {name: d for name, d in parts.items() if d is not None}
    if not parts:
        first = next(iter(readings.values()))
        notes = "; ".join(f"{n}: {s.note}" for n, s in readings.items() if s.note)
        return TrackSync(
            offset_frames=0, confidence=0.0, min_dist=None, per_frame_confidence=first.per_frame_confidence,
            offsets=first.offsets, offset_curve=np.zeros_like(first.offset_curve), reliable=False,
            note=f"no reliable sync: no member engine could read this track ({notes})", dists=first.dists,
            extra={"members": readings, "members_used": []},
        )
    # members cut 5-frame windows alike; should one have fewer rows, keep the common centred span
    rows = min(d.shape[0] for d in parts.values())
    fused = sum(weights[name] * _centre_rows(d, rows) for name, d in parts.items())
    fused = fused / sum(weights[name] for name in parts)
    sync = summarize(fused, max_offset, n_frames=n_frames)
    gap = sync.confidence
    sync.confidence = evidence(gap, fused.shape[0])
    sync.extra = {
        "curve_gap": float(gap),
        "members": readings,
        "members_used": sorted(parts),
        "member_offsets": {name: int(s.offset_frames) for name, s in readings.items()},
    }
    note = judge_reliability(sync.confidence, n_frames, bars or {})
    if note is not None:
        sync.reliable, sync.note = False, f"no reliable sync: {note}"
    return sync


def judge_reliability(confidence: float, n_frames: int, bars: dict) -> str | None:
    """Why a reading of ``confidence`` over ``n_frames`` frames is not to be trusted, or None.

    Below ``shortest_reliable_frames`` even confident readings were wrong too often on training
    clips; below the ``reliable_confidence`` bar the sound may be another voice, and on a track
    shorter than ``decisive_frames`` (below it, readings with the right voice reached the bar less than
    half as often as whole training tracks do) that is said as it is: the clip is too short to decide.
    """
    length = f"{n_frames} frames ({n_frames / 25:.2f} s)"
    shortest = bars.get("shortest_reliable_frames")
    if shortest is not None and n_frames < shortest:
        return (f"the track is too short to decide: {length}; on training clips, readings of fewer than "
                f"{shortest} frames ({shortest / 25:.2f} s) were wrong too often even when confident")
    bar = bars.get("reliable_confidence")
    if bar is None or confidence >= bar:
        return None
    decisive = bars.get("decisive_frames")
    if decisive is not None and n_frames < decisive:
        return (f"the track is too short to decide: {length} give too little evidence (confidence "
                f"{confidence:.3f} < {bar:.3f}); on training clips right readings reach that bar "
                f"about half as often as whole tracks do from {decisive} frames ({decisive / 25:.2f} s) on")
    return (f"lips and sound agree too little (confidence {confidence:.3f} < {bar:.3f}); this face is not "
            "speaking, or the voice is not its own")


def evidence(gap: float, windows: int) -> float:
    """The fused curve's best-vs-typical gap (in units of window noise) times √windows.

    A mean over *n* windows of unit noise has noise 1/√n, so the figure reads roughly as how many
    standard errors the best offset beats a typical one by, and it grows with the evidence: a
    1-second clip cannot reach what a minute of the same quality reaches, while unrelated sound stays
    low whatever the length. (Neighbouring windows share frames, so it is not a calibrated statistic:
    the bar it is compared with is measured, not assumed.)
    """
    return float(gap * np.sqrt(max(windows, 1)))


def _centre_rows(dists: np.ndarray, rows: int) -> np.ndarray:
    start = (dists.shape[0] - rows) // 2
    return dists[start : start + rows]


class FusedScorer(TrackScorer):
    """Hands every chunk of crops to each member's scorer; ``finish`` fuses their readings. With
    several audios (``multi``) every member reads them all and ``finish`` returns one reading each."""

    def __init__(self, engine: "FusedEngine", member_scorers: dict, n_frames: int, max_offset: int, multi: bool):
        self.engine = engine
        self.member_scorers = member_scorers
        self.n_frames = n_frames
        self.max_offset = max_offset
        self.multi = multi

    def push(self, crops: np.ndarray) -> None:
        for scorer in self.member_scorers.values():
            scorer.push(crops)

    def finish(self):
        finished = {name: scorer.finish() for name, scorer in self.member_scorers.items()}
        if not self.multi:
            return self.engine.fuse(finished, self.max_offset, self.n_frames)
        count = len(next(iter(finished.values())))
        return [self.engine.fuse({n: r[i] for n, r in finished.items()}, self.max_offset, self.n_frames)
                for i in range(count)]


class OpenFusedScorer(OpenTrackScorer):
    """:class:`FusedScorer` for a track whose length is not known yet (each member's open scorer)."""

    def __init__(self, engine: "FusedEngine", member_scorers: dict, max_offset: int):
        self.engine, self.member_scorers, self.max_offset = engine, member_scorers, max_offset

    def push(self, crops: np.ndarray) -> None:
        for scorer in self.member_scorers.values():
            scorer.push(crops)

    def finish(self, audio: np.ndarray, n_frames: int) -> TrackSync:
        finished = {name: scorer.finish(audio, n_frames) for name, scorer in self.member_scorers.items()}
        return self.engine.fuse(finished, self.max_offset, n_frames)

    def close(self) -> None:
        for scorer in self.member_scorers.values():
            scorer.close()


class FusedEngine(SyncEngine):
    """``fused``: ``landmark`` and ``fcn`` (light checkpoint) read together, curves combined."""

    name = "fused"

    def __init__(self, members: dict[str, SyncEngine], fusion: dict):
        self.members = members
        self.fusion = fusion
        self.member_weights = {name: float(fusion["weights"][name]) for name in members}
        self.weights = "fused: " + ", ".join(f"{n} ({m.weights})" for n, m in members.items())

    @classmethod
    def from_weights(cls, weights: str | None = None, device: str = "cpu", runtime: str = "torch") -> "FusedEngine":
        """Both members; ``weights`` names the fcn member's checkpoint (default: the light one), which
        must be the one the stored fusion was fitted with."""
        from ..weights import resolve_weights
        from .fcn import FCNEngine
        from .landmark import LandmarkEngine

        fusion = load_fusion()
        path = resolve_weights(weights or FCN_MEMBER_WEIGHTS)
        fitted = fusion.get("fcn_weights_sha256")
        if fitted and file_sha256(path) != fitted:
            raise EngineUnavailableError(
                f"fused engine unavailable: its weights were fitted with the fcn checkpoint "
                f"{fusion.get('fcn_weights')}, not {Path(path).name} (refit: benchmarks/fused_fit.py)"
            )
        members = {"landmark": LandmarkEngine(), "fcn": FCNEngine.from_weights(str(path), device=device, runtime=runtime)}
        return cls(members, fusion)

    @property
    def speaking_threshold(self) -> float:
        return float(self.fusion.get("speaking_threshold", SyncEngine.speaking_threshold))

    @property
    def relative_speaking_threshold(self) -> float | None:
        value = self.fusion.get("relative_speaking_threshold")
        return None if value is None else float(value)

    def fuse(self, readings: dict[str, TrackSync], max_offset: int, n_frames: int) -> TrackSync:
        return fuse_readings(readings, self.member_weights, max_offset, n_frames, self.fusion)

    def start_track(self, audio: np.ndarray, n_frames: int, max_offset: int = 15) -> TrackScorer:
        scorers = {n: m.start_track(audio, n_frames, max_offset) for n, m in self.members.items()}
        return FusedScorer(self, scorers, n_frames, max_offset, multi=False)

    def open_track(self, max_offset: int = 15) -> OpenTrackScorer:
        return OpenFusedScorer(self, {n: m.open_track(max_offset) for n, m in self.members.items()}, max_offset)

    def start_tracks_multi_audio(self, audios, n_frames: int, max_offset: int = 15) -> FusedScorer:
        """Several audios of one track (shifted copies): each member shares its visual work across them."""
        scorers = {n: start_multi_audio(m, audios, n_frames, max_offset) for n, m in self.members.items()}
        return FusedScorer(self, scorers, n_frames, max_offset, multi=True)


def fused_available() -> tuple[bool, str]:
    """Whether ``fused`` can run here, without loading models."""
    from ..weights import weights_status

    if not FUSION_PATH.is_file():
        return False, f"fused engine unavailable: its fitted weights {FUSION_PATH.name} are missing"
    if os.environ.get("SYNCNET_FCN_NO_PROJECT_WEIGHTS"):
        return False, "fused engine unavailable: it needs the light checkpoint (project weights are hidden)"
    status = weights_status(FCN_MEMBER_WEIGHTS)
    if not status["available"]:
        return False, f"fused engine unavailable: needs the light checkpoint ({status['reason']})"
    return True, "landmark + fcn (light checkpoint), weights fitted on training clips"
