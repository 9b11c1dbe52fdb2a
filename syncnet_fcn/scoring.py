"""From embeddings to the original SyncNet numbers (REFERENCE §3).

``dists[i, k]`` is the distance between video window *i* and audio embedding ``i - max_offset + k``
(zero vector beyond the ends, as the original pads), so column *k* is offset ``max_offset - k``.
"""

from __future__ import annotations

import numpy as np
import torch
# scipy.ndimage, not scipy.signal's medfilt (the same zero-padded running median, bit for bit): importing
# scipy.signal costs each batch worker about half a second of CPU at its start
from scipy.ndimage import median_filter

from .track_sync import TrackSync

#: F.pairwise_distance's default eps: the original measures ||v - a + eps||
PAIRWISE_EPS = 1e-6
#: per-frame confidence median filter width of the original
PER_FRAME_FILTER = 9


def _as_tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).detach().to("cpu")


def pairwise_distance_matrix(video_emb, audio_emb, max_offset: int = 15, block_bytes: int = 32 << 20) -> np.ndarray:
    """``(N, 2*max_offset+1)`` float64 distances for all windows and shifts at once.

    The zero-padded audio is viewed as overlapping ``2*max_offset+1``-row windows (no copy); blocks of
    windows bound the temporary ``(block, shifts, D)`` difference tensor to ``block_bytes``. Embeddings
    are widened to float64 a block at a time: whole float64 copies would cost 16 bytes per dimension
    per frame (hundreds of MB for an hour-long track).
    """
    video = _as_tensor(video_emb)
    audio = _as_tensor(audio_emb)
    if video.ndim != 2 or audio.ndim != 2 or video.shape[1] != audio.shape[1]:
        raise ValueError(f"embeddings must be (N, D) with equal D, got {tuple(video.shape)} and {tuple(audio.shape)}")
    n, dim = video.shape
    shifts = 2 * max_offset + 1
    # audio rows beyond the video's windows are never reached; missing ones are zero-padded
    padded = audio.new_zeros((n + 2 * max_offset, dim))
    usable = min(n, audio.shape[0])
    padded[max_offset : max_offset + usable] = audio[:usable]
    out = torch.empty((n, shifts), dtype=torch.float64)
    block = max(1, block_bytes // (shifts * dim * 8))
    for start in range(0, n, block):
        stop = min(n, start + block)
        # (block, shifts, D) view: row i+k of padded
        windows = padded[start : stop + 2 * max_offset].to(torch.float64).unfold(0, shifts, 1).transpose(1, 2)
        shifted_video = (video[start:stop].to(torch.float64) + PAIRWISE_EPS).unsqueeze(1)  # ||v - a + eps|| = ||(v + eps) - a||
        out[start:stop] = torch.linalg.vector_norm(shifted_video - windows, dim=2)
    return out.numpy()


def offset_axis(max_offset: int = 15) -> np.ndarray:
    """Offsets in frames, ascending: ``-max_offset … +max_offset``."""
    return np.arange(-max_offset, max_offset + 1)


def summarize(dists, max_offset: int = 15, n_frames: int | None = None) -> TrackSync:
    """The original's offset, min distance (LSE-D), confidence (LSE-C) and per-frame confidence.

    With ``n_frames``, per-frame confidence gets one value per track frame: window *i* is centred on
    frame ``i + 2`` and the first/last window's value is repeated towards the track's edges.
    """
    dists = np.asarray(dists, dtype=np.float64)
    if dists.ndim != 2 or dists.shape[1] != 2 * max_offset + 1 or dists.shape[0] == 0:
        raise ValueError(f"dists must be (n_windows > 0, {2 * max_offset + 1}), got {dists.shape}")
    mean_dist = dists.mean(axis=0)
    min_index = int(np.argmin(mean_dist))
    min_dist = float(mean_dist[min_index])
    median = float(np.median(mean_dist))
    per_frame = per_frame_confidence(dists, min_index, n_frames)
    return TrackSync(
        offset_frames=max_offset - min_index,
        confidence=median - min_dist,
        min_dist=min_dist,
        per_frame_confidence=per_frame.astype(np.float32),
        offsets=offset_axis(max_offset),
        offset_curve=mean_dist[::-1].copy(),  # column k ↔ offset max_offset - k
        dists=dists,
    )


def per_frame_confidence(dists, column: int, n_frames: int | None = None) -> np.ndarray:
    """The original's per-frame confidence at column ``column`` of ``dists`` (offset ``max_offset -
    column``): median of the mean curve minus the window's distance there, median-filtered. With
    ``n_frames``, one value per track frame (window *i* is centred on frame ``i + 2``, edges repeated)."""
    dists = np.asarray(dists, dtype=np.float64)
    window_conf = float(np.median(dists.mean(axis=0))) - dists[:, column]
    window_conf = median_filter(window_conf, size=PER_FRAME_FILTER, mode="constant", cval=0.0)
    if n_frames is None:
        return window_conf
    centres = np.clip(np.arange(n_frames) - 2, 0, len(window_conf) - 1)
    return window_conf[centres]


def context_offsets(dists, context: int, max_offset: int = 15) -> np.ndarray:
    """Offset per position when ``context`` consecutive windows are judged together.

    Position *p* averages the distance rows ``p … p + context - 1`` and takes the argmin, as in the
    accuracy protocol's K-frame context; there are ``n_windows - context + 1`` positions (one, averaging
    everything, when the track is shorter than the context).
    """
    dists = np.asarray(dists, dtype=np.float64)
    if context < 1:
        raise ValueError("context must be at least 1 window")
    context = min(context, dists.shape[0])
    cumulative = np.concatenate([np.zeros((1, dists.shape[1])), np.cumsum(dists, axis=0)])
    averaged = (cumulative[context:] - cumulative[:-context]) / context
    return max_offset - np.argmin(averaged, axis=1)
