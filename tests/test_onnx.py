"""ONNX Runtime and devices: the exported graphs compute what torch computes, int8 within its tolerance."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, SHARED
from syncnet_fcn.cli import main
from syncnet_fcn.engines.fcn import FCNEngine
from syncnet_fcn.media import iter_frames, load_audio, shift_audio
from syncnet_fcn.model import FullyConvSyncNet, SyncNet, SyncNetConfig, load_model
from syncnet_fcn.onnx_syncnet import VideoStream2D
from syncnet_fcn.runtime import onnx_available

LIGHT = REPO / "checkpoints" / "syncnet_light.pt"
needs_onnx = pytest.mark.skipif(not onnx_available(), reason="onnxruntime/onnx not installed (pip install .[onnx])")
#: int8 tolerance on distances, relative to the largest torch distance of the track (stated in docs/speed.md)
INT8_DIST_TOLERANCE = 0.05


@pytest.mark.parametrize("config", [SyncNetConfig.official(), SyncNetConfig.light()], ids=["official", "light"])
def test_the_2d_video_stream_equals_the_3d_one(config):
    torch.manual_seed(0)
    net = SyncNet(config)
    for module in net.modules():  # BatchNorm statistics away from the identity, so folding them is tested
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    net.eval()
    clip = torch.rand(1, config.in_channels, 9, *config.image_size) * (255 * config.pixel_scale)
    with torch.inference_mode():
        expected = FullyConvSyncNet(net).video_embeddings(clip)
        got = VideoStream2D(net)(clip[0].transpose(0, 1))
    assert got.shape == expected.shape == (5, config.embedding_dim)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def real_crops(clip, n_frames=100):
    path = clip("syncnet_example.avi")  # a 224x224 face crop already: its frames are the crops
    crops = np.stack([frame for _, frame in iter_frames(path, end_frame=n_frames)])
    return crops, load_audio(path, end_frame=n_frames)


def read(engine, crops, audio, shift):
    scorer = engine.start_track(shift_audio(audio, shift), len(crops), max_offset=15)
    for first in range(0, len(crops), 64):
        scorer.push(crops[first:first + 64])
    return scorer.finish()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The light checkpoint (with its calibration files) copied away and exported there, int8 included."""
    if not onnx_available():
        pytest.skip("onnxruntime/onnx not installed")
    training = SHARED / "train" / "grid_s1"
    if not training.exists():
        pytest.skip(f"{training} not present (training footage calibrates the int8 model)")
    folder = tmp_path_factory.mktemp("onnx")
    for source in LIGHT.parent.glob(LIGHT.name + "*"):
        shutil.copy(source, folder / source.name)
    weights = folder / LIGHT.name
    videos = sorted(training.glob("*.mp4"))[:6]
    assert main(["export", "--weights", str(weights), "--int8", "--calibrate-on", *map(str, videos)]) == 0
    return weights


@needs_onnx
@pytest.mark.slow
def test_onnx_and_int8_read_real_crops_as_torch_does(exported, clip):
    crops, audio = real_crops(clip)
    engines = {runtime: FCNEngine.from_weights(str(exported), runtime=rt, int8=int8)
               for runtime, rt, int8 in (("torch", "torch", False), ("onnx", "onnx", False), ("int8", "onnx", True))}
    for shift in (0, 6):
        readings = {name: read(engine, crops, audio, shift) for name, engine in engines.items()}
        base = readings["torch"]
        assert readings["onnx"].extra["runtime"] == "onnx" and readings["int8"].extra["runtime"] == "onnx int8"
        assert readings["onnx"].offset_frames == base.offset_frames
        np.testing.assert_allclose(readings["onnx"].dists, base.dists, atol=1e-3 * np.abs(base.dists).max())
        assert readings["int8"].offset_frames == base.offset_frames
        deviation = np.abs(readings["int8"].dists - base.dists).max() / np.abs(base.dists).max()
        assert deviation < INT8_DIST_TOLERANCE
    # the shift moves the reading: the comparison above is between readings that mean something
    assert read(engines["int8"], crops, audio, 6).offset_frames == read(engines["int8"], crops, audio, 0).offset_frames - 6


@needs_onnx
def test_onnx_files_of_other_weights_are_refused(tmp_path):
    from syncnet_fcn.errors import WeightsError
    from syncnet_fcn.onnx_syncnet import OnnxFullyConvSyncNet, export, onnx_paths

    weights = tmp_path / "light.pt"
    shutil.copy(LIGHT, weights)
    net = load_model(weights)
    export(net, weights)
    assert all(onnx_paths(weights)[kind].exists() for kind in ("video", "audio"))
    weights.write_bytes(weights.read_bytes() + b"\0")  # other weights under the same name
    with pytest.raises(WeightsError, match="export"):
        OnnxFullyConvSyncNet.load(net, weights)
    with pytest.raises(WeightsError, match="--int8"):
        OnnxFullyConvSyncNet.load(net, weights, int8=True)  # never exported


def test_export_int8_without_training_videos_is_a_usage_error(capsys):
    assert main(["export", "--weights", str(LIGHT), "--int8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--calibrate-on" in err and len(err.splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: --device cuda is valid here")
def test_device_cuda_without_a_gpu_is_one_error_line(clip, capsys):
    code = main(["detect", str(clip("syncnet_example.avi")), "--engine", "fcn", "--weights", str(LIGHT),
                 "--device", "cuda", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and "cuda" in err and len(err.splitlines()) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_fcn_on_the_gpu_reads_as_on_the_cpu(clip):
    crops, audio = real_crops(clip)
    on_cpu = read(FCNEngine.from_weights(str(LIGHT), device="cpu"), crops, audio, 0)
    on_gpu = read(FCNEngine.from_weights(str(LIGHT), device="cuda"), crops, audio, 0)
    assert on_gpu.offset_frames == on_cpu.offset_frames
    np.testing.assert_allclose(on_gpu.dists, on_cpu.dists, atol=1e-2)
