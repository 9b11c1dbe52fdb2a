"""`syncnet` (sliding windows) vs `fcn` (fully convolutional) on the same crops and the same weights.

    python benchmarks/engine_speed.py [CLIP ...] [--weights FILE] [--max-frames N] [--json OUT]

Default clips: ``../shared/clips/syncnet_example.avi`` and the 60 s ``edtalk_pose_source2.mp4``. Both are
face crops already (224 and 256 px), so their frames, resized to 224×224, stand in for the pipeline's
crops: the benchmark times the engines alone. Without ``--weights`` the model is the OFFICIAL-SIZE
network with RANDOM weights from a fixed seed (BatchNorm statistics taken from the clip so activations
are in a sane range): timings are representative, readings are not. Reports wall time per engine, the
ratio, where the time goes (frame preparation, video stream, audio stream, search), whether the
offsets agree, and how far the raw FCN embeddings and distances are from the windowed ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from syncnet_fcn.audio import mfcc, mfcc_windows  # noqa: E402
from syncnet_fcn.engines.fcn import FCNEngine  # noqa: E402
from syncnet_fcn.engines.syncnet import SlidingWindowEngine  # noqa: E402
from syncnet_fcn.media import iter_frames, load_audio  # noqa: E402
from syncnet_fcn.model import SyncNet, SyncNetConfig, load_model, prepare_video  # noqa: E402

DEFAULT_CLIPS = [REPO.parent / "shared" / "clips" / name for name in ("syncnet_example.avi", "edtalk_pose_source2.mp4")]
CHUNK = 128  # crops per push, as the pipeline sends them
SEED = 1234


def clip_crops(path: Path, max_frames: int | None) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    frames = []
    for _, frame in iter_frames(path, end_frame=max_frames):
        side = min(frame.shape[:2])
        top, left = (frame.shape[0] - side) // 2, (frame.shape[1] - side) // 2
        square = frame[top : top + side, left : left + side]
        frames.append(square if side == 224 else cv2.resize(square, (224, 224), interpolation=cv2.INTER_AREA))
    crops = np.stack(frames)
    return crops, load_audio(path, end_frame=len(crops))


def seeded_model(crops: np.ndarray, audio: np.ndarray) -> SyncNet:
    """Official-size SyncNet, random weights (fixed seed), BatchNorm statistics from the clip."""
    torch.manual_seed(SEED)
    model = SyncNet(SyncNetConfig.official())
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None
    model.train()
    with torch.no_grad():
        clip = prepare_video(crops[:24], model.config)
        model.forward_video(torch.stack([clip[0, :, i : i + 5] for i in range(0, 20, 2)]))
        columns = mfcc(audio)
        model.forward_audio(torch.from_numpy(mfcc_windows(columns, min(60, (columns.shape[1] - 20) // 4 + 1))))
    return model.eval()


def run_engine(engine, crops: np.ndarray, audio: np.ndarray):
    """``(reading, wall seconds, CPU seconds of this process)``: on a shared machine CPU time is the steadier."""
    start, start_cpu = time.perf_counter(), time.process_time()
    scorer = engine.start_track(audio, len(crops), 15)
    for first in range(0, len(crops), CHUNK):
        scorer.push(crops[first : first + CHUNK])
    result = scorer.finish()
    return result, time.perf_counter() - start, time.process_time() - start_cpu


def compare(path: Path, model: SyncNet | None, max_frames: int | None) -> dict:
    crops, audio = clip_crops(path, max_frames)
    label = "given weights"
    if model is None:
        model = seeded_model(crops, audio)
        label = f"official-size SyncNet, RANDOM weights (seed {SEED}), BN statistics from the clip"
    engines = [SlidingWindowEngine(model, keep_embeddings=True), FCNEngine(model, keep_embeddings=True)]
    # warm-up (allocator, oneDNN kernels) on a few frames so neither engine pays it in the timing
    for engine in engines:
        run_engine(engine, crops[:30], audio[: 640 * 30])
    results = {}
    for engine in engines:
        results[engine.name] = run_engine(engine, crops, audio)
    (win, win_s, win_cpu), (fcn, fcn_s, fcn_cpu) = results["syncnet"], results["fcn"]
    video_diff = np.abs(win.extra["video_embeddings"] - fcn.extra["video_embeddings"]).max()
    audio_rel = np.linalg.norm(win.extra["audio_embeddings"] - fcn.extra["audio_embeddings"], axis=1) / np.linalg.norm(
        win.extra["audio_embeddings"], axis=1
    )
    dist_rel = np.abs(fcn.dists - win.dists) / np.abs(win.dists)

    def reading(result, wall, cpu):
        return {
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "offset": result.offset_frames,
            "confidence": round(result.confidence, 4),
            "min_dist": round(result.min_dist, 4),
            "timings_s": {k: round(v, 2) for k, v in result.extra["timings"].items()},
        }

    return {
        "clip": path.name,
        "frames": len(crops),
        "windows": win.extra["n_windows"],
        "weights": label,
        "torch_threads": torch.get_num_threads(),
        "syncnet": reading(win, win_s, win_cpu),
        "fcn": reading(fcn, fcn_s, fcn_cpu),
        "speedup_fcn_vs_syncnet_wall": round(win_s / fcn_s, 3),
        "speedup_fcn_vs_syncnet_cpu": round(win_cpu / fcn_cpu, 3),
        "offsets_identical": win.offset_frames == fcn.offset_frames,
        "video_embedding_max_abs_diff": float(video_diff),
        "audio_embedding_rel_diff_mean": float(audio_rel.mean()),
        "raw_distance_rel_diff_mean": float(dist_rel.mean()),
        "raw_distance_rel_diff_max": float(dist_rel.max()),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--weights", help="a real weights file instead of the seeded random model")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.weights) if args.weights else None
    report = []
    for clip in args.clips:
        row = compare(clip, model, args.max_frames)
        report.append(row)
        print(json.dumps(row, indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
