"""Networks: reference layer layout, parameter counts, adapters, image conversion, file loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrct.models.networks import (
    NLayerDiscriminator,
    ResnetGenerator,
    count_parameters,
    from_network_output,
    init_weights,
    to_network_input,
)
from mrct.models.registry import zoo_architecture
from mrct.models.trained import GENERATOR_FORMAT, load_trained_generator
from mrct.slices.geometry import to_levels


def test_zoo_generator_has_the_published_parameter_count():
    arch = zoo_architecture()
    net = ResnetGenerator(arch["input_nc"], arch["output_nc"], arch["ngf"], arch["n_blocks"])
    assert count_parameters(net) == 11_378_179 == arch["n_parameters"]


def test_generator_state_dict_keys_follow_the_reference_layout():
    keys = list(ResnetGenerator(ngf=64, n_blocks=9).state_dict())
    # stem conv, down convs, 9 blocks (two convs each), two transposed convs, output conv
    assert keys[:2] == ["model.1.weight", "model.1.bias"]
    assert "model.4.weight" in keys and "model.7.weight" in keys
    assert "model.10.conv_block.1.weight" in keys and "model.18.conv_block.5.bias" in keys
    assert "model.19.weight" in keys and "model.22.weight" in keys
    assert keys[-2:] == ["model.26.weight", "model.26.bias"]
    assert not any("running_mean" in k for k in keys)
    assert len(keys) == 2 * (1 + 2 + 2 * 9 + 2 + 1)


def test_patchgan_discriminator_layout_and_receptive_output():
    disc = NLayerDiscriminator(input_nc=3, ndf=64, n_layers=3)
    keys = list(disc.state_dict())
    assert keys == [f"model.{i}.{p}" for i in (0, 2, 5, 8, 11) for p in ("weight", "bias")]
    # A 70x70 PatchGAN maps 256x256 to a 30x30 grid of patch scores.
    assert disc(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    assert count_parameters(disc) == 2_764_737


def test_bottleneck_shape_and_forward_shape():
    net = ResnetGenerator(ngf=4, n_blocks=1)
    x = torch.randn(2, 3, 16, 16)
    assert net.bottleneck(x).shape == (2, 16, 4, 4)
    assert net(x).shape == (2, 3, 16, 16)
    assert net(x).abs().max() <= 1.0


def test_adapters_start_as_identity_and_stay_out_of_zoo_keys():
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(ngf=4, n_blocks=1))
    x = torch.randn(1, 3, 16, 16)
    before = net(x)
    zoo_keys = set(net.state_dict())
    net.add_adapters(256)
    assert torch.equal(net(x), before)
    new_keys = set(net.state_dict()) - zoo_keys
    assert new_keys and all(k.startswith("adapter.") for k in new_keys)
    assert net.adapter.fc1.out_channels == 256
    with pytest.raises(ValueError, match="already"):
        net.add_adapters(256)


def test_init_weights_is_reference_normal():
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(ngf=16, n_blocks=2))
    weight = net.model[1].weight
    assert abs(weight.std().item() - 0.02) < 0.005
    assert torch.count_nonzero(net.model[1].bias) == 0


@pytest.mark.parametrize(("dtype", "levels"), [(torch.uint8, [[0, 128], [200, 255]]),
                                               (torch.uint16, [[0, 32768], [51_400, 65535]])])
def test_image_conversion_round_trip(dtype, levels):
    images = torch.tensor([levels], dtype=dtype)
    x = to_network_input(images)
    assert x.shape == (1, 3, 2, 2) and x.dtype == torch.float32
    assert x.min() == -1.0 and x.max() == 1.0
    out = from_network_output(x)  # float, not rounded: the caller decides how to store it
    assert out.shape == (1, 2, 2) and out.dtype == torch.float32
    numpy_dtype = np.uint8 if dtype == torch.uint8 else np.uint16
    np.testing.assert_array_equal(to_levels(out.numpy(), -1.0, 1.0, numpy_dtype), images.numpy())
    with pytest.raises(ValueError, match="grayscale"):
        to_network_input(torch.zeros(1, 3, 2, 2, dtype=dtype))
    with pytest.raises(ValueError, match="uint8 or uint16"):
        to_network_input(torch.zeros(1, 2, 2, dtype=torch.int32))


def test_a_stored_level_and_its_8_bit_twin_give_the_same_input():
    eight = torch.tensor([[[0, 51, 255]]], dtype=torch.uint8)
    sixteen = (eight.to(torch.int32) * 257).to(torch.uint16)  # 65535 = 255 * 257
    assert torch.allclose(to_network_input(eight), to_network_input(sixteen), atol=1e-6)
    assert from_network_output(torch.full((1, 3, 1, 1), 1.5)).item() == 1.0  # clipped to [-1, 1]


def test_load_trained_generator_round_trip_and_errors(tmp_path):
    net = ResnetGenerator(ngf=4, n_blocks=1, adapter_units=8)
    path = tmp_path / "G_mr2ct.pth"
    torch.save(
        {
            "format": GENERATOR_FORMAT,
            "model": "scratch",
            "direction": "mr2ct",
            "architecture": net.architecture,
            "strategy": "adapters",
            "state_dict": net.state_dict(),
        },
        path,
    )
    loaded = load_trained_generator(path)
    assert not loaded.training
    x = torch.randn(1, 3, 16, 16)
    assert torch.equal(loaded(x), net.eval()(x))

    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="bad.pth"):
        load_trained_generator(bad)
    foreign = tmp_path / "foreign.pth"
    torch.save({"weights": 1}, foreign)
    with pytest.raises(ValueError, match="foreign.pth.*format"):
        load_trained_generator(foreign)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_trained_generator(tmp_path / "missing.pth")
