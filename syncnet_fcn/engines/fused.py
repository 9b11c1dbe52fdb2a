"""``fused``: one reading from the standardised offset curves of ``landmark`` and ``fcn``.

The two engines fail on different clips (the face mesh loses a turned head, the image network a
badly lit mouth), so where they disagree a weighted sum of their curves can beat each. Every member
reads the same crops of the same tracks (the pipeline decodes once and pushes to this engine's scorer,
which hands each chunk to every member). Each member's distance matrix is centred per window and
divided by the spread of its own offset curve, so the members speak in the same units whatever their
scale; the fused matrix is their weighted sum and goes through the original's summary (offset = argmin
of the mean curve) with one change: the confidence is the chosen offset's advantage in standard
errors over the windows (:func:`evidence`), so that it grows with the length of the track. The weights, the reliability bar and the shortest
track that can be trusted are fitted on training footage by ``benchmarks/fused_fit.py`` and stored with
how they were fitted in ``syncnet_fcn/data/fused.json``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import EngineUnavailableError
from .base import SyncEngine, TrackScorer, TrackSync, start_multi_audio

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
    """``sync.dists`` centred per window and divided by the spread of its mean curve (None: no reading).

    The mean over windows of the result is the standardised offset curve (zero mean, unit spread), and
    averaging any run of windows stays linear, so context readings of the fused matrix are sums of the
    members' context readings.
    """
    if sync.dists is None or sync.min_dist is None:
        return None
    dists = np.asarray(sync.dists, dtype=np.float64)
    centred = dists - dists.mean(axis=1, keepdims=True)
    spread = float(centred.mean(axis=0).std())
    if not np.isfinite(spread) or spread <= 0:
        return None
    return centred / spread


def fuse_readings(readings: dict[str, TrackSync], weights: dict[str, float], max_offset: int, n_frames: int,
                  reliable_confidence: float | None = None, shortest_frames: int | None = None) -> TrackSync:
    """The fused reading of one track from its members' readings (``{member: TrackSync}``).

    Members without a reading (no face mesh, silent audio) drop out and the others carry the reading
    alone; the result says which members it used in ``extra["members_used"]``.
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
    sync.confidence = evidence(fused, max_offset - sync.offset_frames)
    sync.extra = {
        "curve_gap": float(gap),
        "members": readings,
        "members_used": sorted(parts),
        "member_offsets": {name: int(s.offset_frames) for name, s in readings.items()},
    }
    notes = []
    if reliable_confidence is not None and sync.confidence < reliable_confidence:
        notes.append(
            f"lips and sound agree too little (confidence {sync.confidence:.3f} < {reliable_confidence:.3f}); "
            "this face is not speaking, or the voice is not its own"
        )
    if shortest_frames is not None and n_frames < shortest_frames:
        notes.append(
            f"the track is too short to decide: {n_frames} frames ({n_frames / 25:.2f} s) against the "
            f"{shortest_frames} frames ({shortest_frames / 25:.2f} s) a reading needs to be trusted"
        )
    if notes:
        sync.reliable = False
        sync.note = "no reliable sync: " + "; ".join(notes)
    return sync


def evidence(fused: np.ndarray, column: int) -> float:
    """How many standard errors the chosen offset beats a typical one, over the track's windows.

    Each window's advantage at ``column`` (the mean curve's median minus the window's value there)
    is averaged and divided by its standard error, so the figure grows with the evidence: a 1-second
    clip cannot reach what a minute of the same quality reaches, and unrelated sound stays low
    whatever the length. (Neighbouring windows share frames, so it is not a calibrated t statistic:
    the bar it is compared with is measured, not assumed.)
    """
    advantage = float(np.median(fused.mean(axis=0))) - fused[:, column]
    if len(advantage) < 2:
        return 0.0
    spread = float(advantage.std(ddof=1))
    return float(advantage.mean() / max(spread, 1e-9) * np.sqrt(len(advantage)))


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


class FusedEngine(SyncEngine):
    """``fused``: ``landmark`` and ``fcn`` (light checkpoint) read together, curves combined."""

    name = "fused"

    def __init__(self, members: dict[str, SyncEngine], fusion: dict):
        self.members = members
        self.fusion = fusion
        self.member_weights = {name: float(fusion["weights"][name]) for name in members}
        self.weights = "fused: " + ", ".join(f"{n} ({m.weights})" for n, m in members.items())

    @classmethod
    def from_weights(cls, weights: str | None = None, device: str = "cpu") -> "FusedEngine":
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
        members = {"landmark": LandmarkEngine(), "fcn": FCNEngine.from_weights(str(path), device=device)}
        return cls(members, fusion)

    @property
    def speaking_threshold(self) -> float:
        return float(self.fusion.get("speaking_threshold", SyncEngine.speaking_threshold))

    @property
    def relative_speaking_threshold(self) -> float | None:
        value = self.fusion.get("relative_speaking_threshold")
        return None if value is None else float(value)

    def fuse(self, readings: dict[str, TrackSync], max_offset: int, n_frames: int) -> TrackSync:
        return fuse_readings(readings, self.member_weights, max_offset, n_frames,
                             self.fusion.get("reliable_confidence"), self.fusion.get("shortest_reliable_frames"))

    def start_track(self, audio: np.ndarray, n_frames: int, max_offset: int = 15) -> TrackScorer:
        scorers = {n: m.start_track(audio, n_frames, max_offset) for n, m in self.members.items()}
        return FusedScorer(self, scorers, n_frames, max_offset, multi=False)

    def start_tracks_multi_audio(self, audios, n_frames: int, max_offset: int = 15) -> FusedScorer:
        """Several audios of one track (shifted copies): each member shares its visual work across them."""
        scorers = {n: start_multi_audio(m, audios, n_frames, max_offset) for n, m in self.members.items()}
        return FusedScorer(self, scorers, n_frames, max_offset, multi=True)


def fused_available() -> tuple[bool, str]:
    """Whether ``fused`` can run here, without loading models."""
    from ..weights import weights_status

    if not FUSION_PATH.is_file():
        return False, f"fused engine unavailable: its fitted weights {FUSION_PATH.name} are missing"
    status = weights_status(FCN_MEMBER_WEIGHTS)
    if not status["available"]:
        return False, f"fused engine unavailable: needs the light checkpoint ({status['reason']})"
    return True, "landmark + fcn (light checkpoint), weights fitted on training clips"
