"""Pretrained weight files: official zoo format with legacy buffers, mrct format, clear errors."""

from __future__ import annotations

import hashlib

import pytest
import torch

from mrct.models.networks import ResnetGenerator, init_weights
from mrct.models.pretrained import load_pretrained_generator, save_pretrained_generator
from mrct.models.registry import zoo_architecture

ZOO = {k: zoo_architecture()[k] for k in ("input_nc", "output_nc", "ngf", "n_blocks")}
TINY = {"input_nc": 3, "output_nc": 3, "ngf": 4, "n_blocks": 1}


def _official_state_dict(arch):
    """A state dict as the zoo publishes it: weights plus old instance-norm running statistics."""
    torch.manual_seed(1)
    net = init_weights(ResnetGenerator(**arch))
    state = dict(net.state_dict())
    for index, module in enumerate(net.model):
        if isinstance(module, torch.nn.InstanceNorm2d):
            state[f"model.{index}.running_mean"] = torch.zeros(module.num_features)
            state[f"model.{index}.running_var"] = torch.ones(module.num_features)
            state[f"model.{index}.num_batches_tracked"] = torch.tensor(0)
    block_norm = net.model[10].conv_block[2]
    state["model.10.conv_block.2.running_mean"] = torch.zeros(block_norm.num_features)
    return net, state


def test_official_zoo_file_with_legacy_buffers_loads_strictly(tmp_path):
    net, state = _official_state_dict(ZOO)
    assert any(k.endswith("running_mean") for k in state)
    path = tmp_path / "horse2zebra.pth"
    torch.save(state, path)
    loaded = load_pretrained_generator(path, ZOO)
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_mrct_pretrained_file_round_trip_and_architecture_check(tmp_path):
    net = init_weights(ResnetGenerator(**TINY))
    path = tmp_path / "skimage_photos.pth"
    save_pretrained_generator(path, net, source="locally pretrained on scikit-image photos, not a zoo model", extra={})
    loaded = load_pretrained_generator(path, TINY)
    x = torch.randn(1, 3, 16, 16)
    assert torch.equal(loaded(x), net(x))
    with pytest.raises(ValueError, match=r"skimage_photos.pth: pretrained with architecture"):
        load_pretrained_generator(path, {**TINY, "ngf": 8})


def test_corrupt_file_error_names_the_file(tmp_path):
    path = tmp_path / "style_monet.pth"
    path.write_bytes(b"\x00garbage, e.g. an HTML error page saved as .pth")
    with pytest.raises(ValueError, match=r"style_monet.pth: expected a PyTorch state dict"):
        load_pretrained_generator(path, TINY)


def test_non_state_dict_error(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match=r"list.pth: expected a state dict"):
        load_pretrained_generator(path, TINY)
    path2 = tmp_path / "strings.pth"
    torch.save({"model.1.weight": "text"}, path2)
    with pytest.raises(ValueError, match=r"strings.pth: .*not tensors"):
        load_pretrained_generator(path2, TINY)


def test_wrong_architecture_error_lists_keys_and_shapes(tmp_path):
    _, state = _official_state_dict({**TINY, "n_blocks": 2})
    path = tmp_path / "deeper.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"deeper.pth: does not fit .*unexpected keys: model\.11"):
        load_pretrained_generator(path, TINY)
    _, wide = _official_state_dict({**TINY, "ngf": 8})
    torch.save(wide, path)
    with pytest.raises(ValueError, match=r"deeper.pth: .*shape mismatches: model\.1\.weight"):
        load_pretrained_generator(path, TINY)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_pretrained_generator(tmp_path / "absent.pth", TINY)


@pytest.fixture
def http_dir(tmp_path):
    """A local HTTP server over a folder: the real download code, no internet."""
    import functools
    import http.server
    import threading

    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetch_zoo_weights_downloads_records_and_validates(http_dir, tmp_path):
    from mrct.models.pretrained import fetch_zoo_weights

    folder, base = http_dir
    _, state = _official_state_dict(TINY)
    torch.save(state, folder / "good.pth")
    dest, lock = tmp_path / "pre/good.pth", tmp_path / "pre/good.lock"
    fetch_zoo_weights(f"{base}/good.pth", dest, TINY, lock_file=lock, retries=1, timeout=10)
    assert dest.is_file() and lock.is_file()
    record = lock.read_text(encoding="utf-8")
    assert "good.pth" in record
    assert hashlib.sha256((folder / "good.pth").read_bytes()).hexdigest() in record
    assert dest.read_bytes() == (folder / "good.pth").read_bytes()

    (folder / "bad.pth").write_text("<html>rate limited</html>")
    bad, bad_lock = tmp_path / "pre/bad.pth", tmp_path / "pre/bad.lock"
    with pytest.raises(ValueError, match=r"bad.pth: expected a PyTorch state dict"):
        fetch_zoo_weights(f"{base}/bad.pth", bad, TINY, lock_file=bad_lock, retries=1, timeout=10)
    assert not bad_lock.exists()  # no digest of a bad file is kept as the reference
    assert not bad.exists()


def test_fetch_zoo_weights_offline_error_names_url_and_destination(tmp_path):
    from mrct.io.download import DownloadError
    from mrct.models.pretrained import fetch_zoo_weights

    dest = tmp_path / "pre/horse2zebra.pth"
    with pytest.raises(DownloadError, match=r"127\.0\.0\.1:9/horse2zebra.pth.*horse2zebra.pth"):
        fetch_zoo_weights("http://127.0.0.1:9/horse2zebra.pth", dest, TINY, lock_file=tmp_path / "l", retries=1,
                          timeout=2)
