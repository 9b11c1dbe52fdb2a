"""The SyncNet family: official key layout, exact fully convolutional video stream, strict loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from syncnet_fcn.errors import WeightsError
from syncnet_fcn.model import (
    FullyConvSyncNet,
    SyncNet,
    SyncNetConfig,
    load_model,
    prepare_video,
    video_final_kernel,
    video_windows,
)

CONFIGS = [SyncNetConfig.official(), SyncNetConfig.light()]


def randomised(config: SyncNetConfig, seed: int = 0) -> SyncNet:
    """Random weights with non-trivial BatchNorm: running stats and affine parameters far from 0/1."""
    torch.manual_seed(seed)
    model = SyncNet(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def official_state_dict(seed: int = 0) -> dict:
    """A state dict with the official key layout, without num_batches_tracked like old checkpoints."""
    state = randomised(SyncNetConfig.official(), seed).state_dict()
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def test_official_key_layout_matches_reference_indices():
    keys = SyncNet().state_dict().keys()
    for block in ("netcnnaud", "netcnnlip"):
        for conv, bn in zip((0, 4, 8, 11, 14, 18), (1, 5, 9, 12, 15, 19)):
            assert f"{block}.{conv}.weight" in keys and f"{block}.{conv}.bias" in keys
            for stat in ("weight", "bias", "running_mean", "running_var"):
                assert f"{block}.{bn}.{stat}" in keys
    for block in ("netfcaud", "netfclip"):
        assert {f"{block}.0.weight", f"{block}.1.running_var", f"{block}.3.weight"} <= set(keys)
    shapes = SyncNet().state_dict()
    assert tuple(shapes["netcnnlip.0.weight"].shape) == (96, 3, 5, 7, 7)
    assert tuple(shapes["netcnnlip.18.weight"].shape) == (512, 256, 1, 6, 6)
    assert tuple(shapes["netcnnaud.18.weight"].shape) == (512, 256, 5, 4)
    assert tuple(shapes["netfclip.3.weight"].shape) == (1024, 512)


def test_windowed_shapes_and_final_kernel():
    assert video_final_kernel((224, 224)) == (6, 6)
    model = randomised(SyncNetConfig.official())
    with torch.inference_mode():
        assert model.forward_video(torch.rand(2, 3, 5, 224, 224) * 255).shape == (2, 1024)
        assert model.forward_audio(torch.randn(3, 1, 13, 20)).shape == (3, 1024)
    with pytest.raises(ValueError):
        SyncNetConfig(name="tiny", image_size=(32, 32))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_fcn_video_stream_equals_sliding_windows(config):
    model = randomised(config, seed=3)
    fcn = FullyConvSyncNet(model)
    frames = 9
    clip = torch.rand(1, config.in_channels, frames, *config.image_size) * 255 * config.pixel_scale
    with torch.inference_mode():
        whole = fcn.video_embeddings(clip)
        windowed = model.forward_video(video_windows(clip, 0, frames - 4))
    assert whole.shape == (frames - 4, config.embedding_dim)
    assert windowed.abs().max() > 1e-2  # the comparison is not between near-zero vectors
    torch.testing.assert_close(whole, windowed, rtol=0, atol=1e-4)


def test_fcn_shares_parameters_with_the_network():
    model = randomised(SyncNetConfig.light())
    fcn = FullyConvSyncNet(model)
    assert len(list(fcn.parameters())) == len(list(model.parameters()))
    clip = torch.rand(1, 1, 6, 64, 128)
    with torch.inference_mode():
        before = fcn.video_embeddings(clip)
        model.netfclip[3].bias.add_(1.0)  # a change in the network shows through the FCN view
        after = fcn.video_embeddings(clip)
    torch.testing.assert_close(after - before, torch.ones_like(before), rtol=0, atol=1e-5)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_fcn_audio_in_chunks_equals_one_pass(config):
    model = randomised(config, seed=5)
    fcn = FullyConvSyncNet(model)
    columns = torch.randn(1, 1, 13, 4 * 60 - 1) * 10
    with torch.inference_mode():
        one = fcn.audio_embeddings(columns)
        chunked = fcn.audio_embeddings(columns, chunk_columns=44)
    assert one.shape == (55, config.embedding_dim)  # one per complete 20-column window
    torch.testing.assert_close(chunked, one, rtol=0, atol=1e-5)


def test_prepare_video_official_is_raw_bgr():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(4, 224, 224, 3), dtype=np.uint8)
    tensor = prepare_video(crops, SyncNetConfig.official())
    assert tensor.shape == (1, 3, 4, 224, 224) and tensor.dtype == torch.float32
    np.testing.assert_array_equal(tensor[0, :, 2].permute(1, 2, 0).numpy(), crops[2].astype(np.float32))


def test_prepare_video_lower_face_region_is_the_bottom_half():
    import dataclasses

    import cv2

    rng = np.random.default_rng(1)
    crops = rng.integers(0, 256, size=(3, 224, 224, 3), dtype=np.uint8)
    crops[:, :112] = 0  # the upper half must not reach a lower_face member
    config = dataclasses.replace(SyncNetConfig.light(), region="lower_face")
    tensor = prepare_video(crops, config)
    assert tensor.shape == (1, 1, 3, 64, 128)
    lower = cv2.resize(cv2.cvtColor(crops[0, 112:], cv2.COLOR_BGR2GRAY), (128, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(tensor[0, 0, 0].numpy() * 255, lower, atol=1.5)


def test_prepare_video_light_is_the_grey_mouth_band():
    import cv2

    rng = np.random.default_rng(2)
    crops = rng.integers(0, 256, size=(2, 224, 224, 3), dtype=np.uint8)
    config = SyncNetConfig.light()
    tensor = prepare_video(crops, config)
    assert tensor.shape == (1, 1, 2, 64, 128)
    # rows 0.3–0.75 and columns 0.05–0.95 of the 224 crop: 67:168, 11:213
    band = cv2.resize(cv2.cvtColor(crops[1, 67:168, 11:213], cv2.COLOR_BGR2GRAY), (128, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(tensor[0, 0, 1].numpy() * 255, band, atol=1.5)
    crops[:, 67:168, 11:213] = 0  # outside the band must not reach the model
    assert float(prepare_video(crops, config).abs().max()) == 0.0


def test_config_round_trip():
    for config in CONFIGS:
        assert SyncNetConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError):
        SyncNetConfig.from_dict({**SyncNetConfig.light().to_dict(), "colour": "pink"})


def test_load_official_layout_file(tmp_path):
    state = official_state_dict(seed=1)
    path = tmp_path / "syncnet_v2.model"
    torch.save(state, path)
    model = load_model(path)
    assert not model.training
    assert model.config == SyncNetConfig.official()
    torch.testing.assert_close(model.netcnnlip[0].weight, state["netcnnlip.0.weight"])
    torch.testing.assert_close(model.netfcaud[1].running_var, state["netfcaud.1.running_var"])


def test_load_project_checkpoint_with_config_in_half_precision(tmp_path):
    config = SyncNetConfig.light()
    source = randomised(config, seed=2)
    path = tmp_path / "light.pt"
    state = {k: v.half() if v.is_floating_point() else v for k, v in source.state_dict().items()}
    torch.save({"config": config.to_dict(), "state_dict": state, "epoch": 3}, path)
    model = load_model(path)
    assert model.config == config
    assert model.netcnnlip[0].weight.dtype == torch.float32
    torch.testing.assert_close(model.netcnnlip[0].weight, source.netcnnlip[0].weight, rtol=1e-3, atol=1e-3)


def test_wrong_keys_or_shapes_are_weights_errors(tmp_path):
    state = official_state_dict()
    renamed = {k.replace("netcnnlip", "video"): v for k, v in state.items()}
    torch.save(renamed, tmp_path / "renamed.model")
    with pytest.raises(WeightsError, match=r"renamed\.model.*missing keys.*unexpected keys"):
        load_model(tmp_path / "renamed.model")

    reshaped = dict(state, **{"netfclip.3.weight": torch.zeros(512, 512)})
    torch.save(reshaped, tmp_path / "reshaped.model")
    with pytest.raises(WeightsError, match=r"reshaped\.model.*wrong shapes.*netfclip\.3\.weight"):
        load_model(tmp_path / "reshaped.model")

    light = randomised(SyncNetConfig.light()).state_dict()
    torch.save(light, tmp_path / "light_without_config.pt")  # a light state dict read as official
    with pytest.raises(WeightsError, match="light_without_config"):
        load_model(tmp_path / "light_without_config.pt")


def test_truncated_or_foreign_files_are_weights_errors(tmp_path):
    path = tmp_path / "syncnet_v2.model"
    torch.save(official_state_dict(), path)
    data = path.read_bytes()
    (tmp_path / "truncated.model").write_bytes(data[: len(data) // 3])
    with pytest.raises(WeightsError, match=r"truncated\.model"):
        load_model(tmp_path / "truncated.model")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(WeightsError, match=r"notes\.txt"):
        load_model(tmp_path / "notes.txt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match=r"list\.pt.*not a SyncNet state dict"):
        load_model(tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="does not exist"):
        load_model(tmp_path / "absent.model")


def test_separate_audio_stream_copy_gives_the_same_fcn_audio():
    from syncnet_fcn.model import AudioStream

    model = randomised(SyncNetConfig.light(), seed=6)
    columns = torch.randn(1, 1, 13, 99) * 10
    with torch.inference_mode():
        own = FullyConvSyncNet(model).audio_embeddings(columns)
        copied = FullyConvSyncNet(model, audio_stream=AudioStream.copy_of(model)).audio_embeddings(columns)
    torch.testing.assert_close(copied, own, rtol=0, atol=1e-6)
