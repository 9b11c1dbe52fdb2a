"""Training footage → a compact cache of model-ready face crops and aligned audio.

The crops are cut by the toolkit's own code (``find_face_tracks`` → ``iter_track_crops`` →
``prepare_video``), so a model trained on the cache sees exactly what the engines show it at inference.
Face detection over a few thousand clips costs minutes of CPU, so it runs once: every clip's main face
track is reduced to the model's input (e.g. the grey mouth band at 64×128) and stored as ``uint8`` beside its
16 kHz audio, in shards under a cache directory outside the repository.

A clip's frames and audio share the 25 fps timeline: frame ``i`` of a clip goes with audio samples
``[640*i, 640*(i+1))`` of the same clip.

Held-out validation must not share speakers with training. LRC-AR names no presenters, so speakers are
approximated by *appearance groups*: clips whose face crops look alike (colour layout of face, hair,
clothes) are clustered together and a group goes wholly to one side of the split. Clusters are coarser
than identities (a presenter may appear in two outfits, two presenters in one studio may merge), which
errs towards a stricter split rather than leakage within one recording session.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import SAMPLES_PER_FRAME
from .errors import InvalidArgumentError

#: Corpora the builder knows, as folders of ``../shared/train``; each clip is one ``.mp4``.
CORPORA = ("lrc_ar", "grid_s1")

#: Clips per shard file: an interrupted build loses at most one shard of work.
SHARD_CLIPS = 200

#: A clip's face track must cover at least this many frames (a 1.2 s word clip has 30).
MIN_TRACK_FRAMES = 20

#: Training clips that are the same recording as a clip of the evaluation set (``../shared/clips``),
#: found by comparing frames; they are kept out of both sides of the split.
EVALUATION_DUPLICATES = {
    "grid_s1/bbaf2n": "same recording as ../shared/clips/grid_bbaf2n.mpg",
}

#: Run the face detector on every 5th frame and interpolate (the tracker's own option): boxes are
#: median-smoothed over 13 frames anyway, and it makes caching ~4× cheaper on a small CPU.
DETECT_EVERY = 5

#: Side of the thumbnail used for the appearance descriptor of a clip.
DESCRIPTOR_SIZE = 24


def default_cache_dir() -> Path:
    """``$SYNCNET_FCN_CACHE/train`` or ``~/.cache/syncnet_fcn/train`` (never inside the repository)."""
    import os

    root = os.environ.get("SYNCNET_FCN_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "syncnet_fcn"
    return base / "train"


def input_key(config) -> str:
    """Cache sub-folder for one model input layout: region, channels and size decide what is stored."""
    size = config.image_size if isinstance(config.image_size, (tuple, list)) else (config.image_size,) * 2
    return f"{config.region}_{config.in_channels}x{size[0]}x{size[1]}"


@dataclass(frozen=True)
class ClipEntry:
    """One clip's main face track inside the cache."""

    name: str  # "<corpus>/<file stem>"
    corpus: str
    start: int  # first row of this clip in :attr:`TrainingSet.frames`
    n_frames: int
    track_start_frame: int  # where the track starts in the source video


def parse_audio_shifts(text: str | None) -> dict[str, float]:
    """``"lrc_ar=-0.67,grid_s1=0.92"`` → ``{"lrc_ar": -0.67, "grid_s1": 0.92}`` (frames per corpus)."""
    shifts = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        corpus, _, value = item.partition("=")
        try:
            shifts[corpus.strip()] = float(value)
        except ValueError:
            raise InvalidArgumentError(
                f"--corpus-audio-shift: expected corpus=frames, e.g. lrc_ar=-0.67, got {item!r}"
            ) from None
    return shifts


class TrainingSet:
    """The cached clips: ``frames[start:start+n]`` is a clip's model input, ``audio_of(i)`` its sound.

    ``frames`` is ``(N, C, H, W)`` uint8 (the rounded output of ``prepare_video``), ``audio`` int16 at
    16 kHz with ``640 * N`` samples in the same row order, ``descriptors`` one appearance vector per clip.
    """

    def __init__(self, clips: list[ClipEntry], frames: np.ndarray, audio: np.ndarray, descriptors: np.ndarray,
                 meta: dict):
        if len(audio) != len(frames) * SAMPLES_PER_FRAME:
            raise ValueError("cache is inconsistent: audio and frames disagree in length")
        self.clips = clips
        self.frames = frames
        self.audio = audio
        self.descriptors = descriptors
        self.meta = meta
        #: corpus → frames its sound is delayed by (negative: advanced) before use, so that a corpus
        #: recorded with its own A/V offset is seen in sync (benchmarks/corpus_lag.py measures it)
        self.audio_shifts: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self.clips)

    def frames_of(self, index: int) -> np.ndarray:
        clip = self.clips[index]
        return self.frames[clip.start : clip.start + clip.n_frames]

    def audio_of(self, index: int) -> np.ndarray:
        clip = self.clips[index]
        sound = self.audio[clip.start * SAMPLES_PER_FRAME : (clip.start + clip.n_frames) * SAMPLES_PER_FRAME]
        shift = self.audio_shifts.get(clip.corpus, 0.0)
        if shift:
            from .media import shift_audio

            sound = shift_audio(sound, shift)
        return sound

    def corpus_indices(self, corpus: str) -> list[int]:
        return [i for i, c in enumerate(self.clips) if c.corpus == corpus]

    def summary(self) -> dict:
        out = {}
        for corpus in sorted({c.corpus for c in self.clips}):
            idx = self.corpus_indices(corpus)
            frames = sum(self.clips[i].n_frames for i in idx)
            out[corpus] = {"clips": len(idx), "frames": frames, "minutes": round(frames / 25 / 60, 1)}
        return out


# -- building ------------------------------------------------------------------------------------------


def list_clips(train_root: str | Path, corpora: tuple[str, ...] = CORPORA) -> list[tuple[str, Path]]:
    """``[(corpus, path)]`` of every clip of ``corpora`` under ``train_root``, in a stable order."""
    root = Path(train_root)
    found = []
    for corpus in corpora:
        folder = root / corpus
        if not folder.is_dir():
            raise InvalidArgumentError(f"training corpus {corpus!r} not found under {root}")
        found.extend((corpus, path) for path in sorted(folder.glob("*.mp4")))
    if not found:
        raise InvalidArgumentError(f"no .mp4 clips under {root} for {', '.join(corpora)}")
    return found


def build_training_set(
    train_root: str | Path,
    config,
    cache_dir: str | Path | None = None,
    corpora: tuple[str, ...] = CORPORA,
    limit: int | None = None,
    progress: bool = True,
) -> TrainingSet:
    """Cut, reduce and cache every clip of ``corpora``; shards already cached are reused.

    ``config`` is the model's :class:`~syncnet_fcn.model.SyncNetConfig` (it decides region, size and
    channels). ``limit`` keeps the first clips of each corpus (for tests and trials). Clips with no
    usable face track are left out and listed in the cache's ``meta.json``.
    """
    from tqdm import tqdm

    folder = Path(cache_dir or default_cache_dir()) / input_key(config)
    folder.mkdir(parents=True, exist_ok=True)
    detector = None
    for corpus in corpora:
        clips = [path for c, path in list_clips(train_root, (corpus,)) if c == corpus]
        if limit is not None:
            clips = clips[:limit]
        shards = [clips[i : i + SHARD_CLIPS] for i in range(0, len(clips), SHARD_CLIPS)]
        bar = tqdm(total=len(clips), desc=f"caching {corpus}", unit="clip", disable=not progress)
        for number, shard in enumerate(shards):
            target = folder / f"{corpus}_{number:03d}.npz"
            if _shard_matches(target, shard):
                bar.update(len(shard))
                continue
            if detector is None:
                detector = _make_detector()
            _write_shard(target, corpus, shard, config, detector, bar)
        bar.close()
    return load_training_set(config, cache_dir, corpora=corpora, limit=limit)


def load_training_set(
    config, cache_dir: str | Path | None = None, corpora: tuple[str, ...] = CORPORA, limit: int | None = None
) -> TrainingSet:
    """The cache built by :func:`build_training_set` for this input layout."""
    folder = Path(cache_dir or default_cache_dir()) / input_key(config)
    clips: list[ClipEntry] = []
    frames, audio, descriptors, skipped = [], [], [], []
    row = 0
    for corpus in corpora:
        shards = sorted(folder.glob(f"{corpus}_*.npz"))
        if not shards:
            raise InvalidArgumentError(
                f"no cached training clips for {corpus} in {folder}: run the build first "
                "(syncnet-fcn train builds it)"
            )
        taken = 0
        for shard in shards:
            with np.load(shard, allow_pickle=False) as data:
                names = [str(n) for n in data["names"]]
                lengths = data["lengths"].astype(int)
                track_starts = data["track_starts"].astype(int)
                skipped.extend(json.loads(str(data["skipped"])))
                keep = len(names) if limit is None else max(0, min(len(names), limit - taken))
                if keep == 0:
                    continue
                n_rows = int(lengths[:keep].sum())
                frames.append(data["frames"][:n_rows])
                audio.append(data["audio"][: n_rows * SAMPLES_PER_FRAME])
                descriptors.append(data["descriptors"][:keep])
                for name, length, track_start in zip(names[:keep], lengths[:keep], track_starts[:keep]):
                    clips.append(ClipEntry(name, corpus, row, int(length), int(track_start)))
                    row += int(length)
                taken += keep
    meta = {"folder": str(folder), "input": input_key(config), "skipped": skipped}
    return TrainingSet(clips, np.concatenate(frames), np.concatenate(audio), np.concatenate(descriptors), meta)


def _shard_matches(path: Path, clips: list[Path]) -> bool:
    if not path.exists():
        return False
    try:
        with np.load(path, allow_pickle=False) as data:
            return json.loads(str(data["sources"])) == [p.name for p in clips]
    except (OSError, ValueError, KeyError):
        return False


def _make_detector():
    from detectors import create_detector

    from .tracking import TrackingOptions

    # frames arrive already scaled to the tracker's detection size: no second downscale
    return create_detector("mediapipe", min_confidence=TrackingOptions().min_confidence, max_side=None)


def _write_shard(target: Path, corpus: str, clips: list[Path], config, detector, bar) -> None:
    names, lengths, track_starts, frames, audio, descriptors, skipped = [], [], [], [], [], [], []
    for path in clips:
        try:
            cut = cut_clip(path, config, detector)
        except Exception as exc:  # one unreadable clip must not stop a build of thousands
            cut = None
            reason = f"{type(exc).__name__}: {exc}"
        else:
            reason = "no face track" if cut is None else None
        bar.update(1)
        if cut is None:
            skipped.append({"clip": f"{corpus}/{path.stem}", "reason": reason})
            continue
        names.append(f"{corpus}/{path.stem}")
        lengths.append(len(cut.frames))
        track_starts.append(cut.track_start_frame)
        frames.append(cut.frames)
        audio.append(cut.audio)
        descriptors.append(cut.descriptor)
    tmp = target.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        names=np.array(names),
        lengths=np.array(lengths, dtype=np.int32),
        track_starts=np.array(track_starts, dtype=np.int32),
        frames=np.concatenate(frames) if frames else np.zeros((0, 1, 1, 1), np.uint8),
        audio=np.concatenate(audio) if audio else np.zeros(0, np.int16),
        descriptors=np.stack(descriptors) if descriptors else np.zeros((0, 3 * DESCRIPTOR_SIZE**2), np.float32),
        skipped=np.array(json.dumps(skipped)),
        sources=np.array(json.dumps([p.name for p in clips])),
        built=np.array(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())),
    )
    tmp.replace(target)


@dataclass
class CutClip:
    frames: np.ndarray  # (n, C, H, W) uint8
    audio: np.ndarray  # (640 n,) int16
    descriptor: np.ndarray  # appearance vector
    track_start_frame: int


def cut_clip(path: str | Path, config, detector=None) -> CutClip | None:
    """The main (longest) face track of one clip as model input + its audio; None without a face.

    Runs the same code as inference: tracking, the original crop geometry at 224×224, then
    ``prepare_video`` for the model's region, size and colour.
    """
    from .crops import iter_track_crops
    from .media import load_audio
    from .model import prepare_video
    from .tracking import TrackingOptions, find_face_tracks

    options = TrackingOptions(min_track_frames=MIN_TRACK_FRAMES, min_face_size=0, detect_every=DETECT_EVERY)
    tracks = find_face_tracks(path, detector=detector or _make_detector(), options=options)
    if not tracks:
        return None
    track = max(tracks, key=lambda t: t.n_frames)
    crops = [chunk for _tid, _first, chunk in iter_track_crops(path, [track], size=224)]
    crops = np.concatenate(crops)
    # (1, C, n, H, W) float; stored on the 0–255 scale, the model's pixel_scale is applied when training
    prepared = prepare_video(crops, config).cpu().numpy() / config.pixel_scale
    frames = np.ascontiguousarray(_to_uint8(prepared[0]).transpose(1, 0, 2, 3))  # (n, C, H, W)
    sound = load_audio(path)
    start = track.start_frame * SAMPLES_PER_FRAME
    stop = start + len(frames) * SAMPLES_PER_FRAME
    span = sound[start:stop]
    if len(span) < stop - start:
        span = np.concatenate([span, np.zeros(stop - start - len(span), np.int16)])
    return CutClip(frames, span.astype(np.int16), appearance_descriptor(crops), int(track.start_frame))


def _to_uint8(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


# -- speaker groups and the split ----------------------------------------------------------------------


def appearance_descriptor(crops: np.ndarray) -> np.ndarray:
    """A vector that is close for clips of the same person in the same setting.

    The median of a few 224×224 crops (mouth motion averages out), shrunk to 24×24 in Lab colour
    with each channel standardised: face shape, skin, hair and clothing colours, not lighting level.
    """
    import cv2

    picks = crops[np.linspace(0, len(crops) - 1, num=min(5, len(crops))).astype(int)]
    still = np.median(picks, axis=0).astype(np.uint8)
    small = cv2.resize(still, (DESCRIPTOR_SIZE, DESCRIPTOR_SIZE), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_BGR2LAB).astype(np.float32)
    lab = (lab - lab.mean(axis=(0, 1))) / (lab.std(axis=(0, 1)) + 1e-3)
    # keep the channel means too (skin and clothing tone) at a lower weight
    tone = cv2.cvtColor(small, cv2.COLOR_BGR2LAB).astype(np.float32).mean(axis=(0, 1)) / 32.0
    vector = np.concatenate([lab.ravel(), tone])
    return (vector / (np.linalg.norm(vector) + 1e-6)).astype(np.float32)


#: Complete-linkage cut (cosine distance of descriptors). On LRC-AR it puts a presenter's clips of one
#: look (same outfit and studio) together, in groups of a few look-alikes; looser cuts or average
#: linkage chain into two giant "suit" and "long hair" clusters that no split can hold out.
GROUP_THRESHOLD = 0.25


def appearance_groups(descriptors: np.ndarray, threshold: float = GROUP_THRESHOLD) -> np.ndarray:
    """Cluster ids (0…k−1): complete-linkage clustering of the descriptors cut at cosine ``threshold``."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(descriptors) == 1:
        return np.zeros(1, dtype=int)
    tree = linkage(descriptors.astype(np.float64), method="complete", metric="cosine")
    return fcluster(tree, t=threshold, criterion="distance").astype(int) - 1


@dataclass
class Split:
    """Clip indices of the training and validation sides, and how the groups were formed."""

    train: list[int]
    val: list[int]
    groups: dict[str, int]  # clip name → group id (per corpus, prefixed)
    notes: dict

    def to_dict(self) -> dict:
        return asdict(self)


def split_by_speaker(
    dataset: TrainingSet, val_fraction: float = 0.1, seed: int = 0, group_threshold: float = GROUP_THRESHOLD
) -> Split:
    """Hold out whole speaker groups (about ``val_fraction`` of each corpus's clips) for validation.

    Multi-speaker corpora are grouped by appearance (:func:`appearance_groups`); a one-speaker corpus
    (GRID s1) cannot be split by speaker, so its held-out part is whole sentences of the same speaker,
    reported separately.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise InvalidArgumentError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train, val, groups, notes = [], [], {}, {}
    excluded = [c.name for c in dataset.clips if c.name in EVALUATION_DUPLICATES]
    if excluded:
        notes["excluded"] = {name: EVALUATION_DUPLICATES[name] for name in excluded}
    for corpus in sorted({c.corpus for c in dataset.clips}):
        idx = np.array([i for i in dataset.corpus_indices(corpus) if dataset.clips[i].name not in excluded])
        if len(idx) == 0:
            continue
        if corpus == "grid_s1":
            labels = np.arange(len(idx))  # one speaker: each sentence is its own group
            notes[corpus] = "single speaker: held-out sentences, not held-out speakers"
        else:
            labels = appearance_groups(dataset.descriptors[idx], group_threshold)
            sizes = np.bincount(labels)
            notes[corpus] = (
                f"{len(sizes)} appearance groups (complete linkage, cosine ≤ {group_threshold}); "
                f"largest {int(sizes.max())} clips, median {int(np.median(sizes))}"
            )
        for i, label in zip(idx, labels):
            groups[dataset.clips[i].name] = f"{corpus}:{label}"
        order = rng.permutation(labels.max() + 1)
        target = val_fraction * len(idx)
        held = set()
        count = 0
        sizes = np.bincount(labels)
        for label in order:
            if count >= target:
                break
            if count + sizes[label] > 2 * target and target > 0:  # a giant group would swallow the split
                continue
            held.add(int(label))
            count += sizes[label]
        for i, label in zip(idx, labels):
            (val if int(label) in held else train).append(int(i))
    return Split(sorted(train), sorted(val), groups, notes)
