"""Reading pretrained generator files: official zoo state dicts and this package's own.

Two kinds of file reach ``resources/pretrained/{model}.pth``:

* an official zoo file: a bare ``state_dict`` of the zoo architecture (ngf 64, 9 blocks).
  Files saved with old PyTorch versions carry instance-norm running statistics
  (``*.running_mean``, ``*.running_var``, ``*.num_batches_tracked``) although the layers never
  used them; current PyTorch rejects them in a strict load, so they are dropped first. Any other
  difference is an error: a silently partial load would fine-tune a half-random network.
* an official pix2pix zoo file (``unet_256``, see mrct.models.unet): a bare ``state_dict`` whose
  batch-norm running statistics are real and must load. Files saved before PyTorch 0.4.1 lack
  the ``num_batches_tracked`` counters; those (and only those) start at 0, as PyTorch itself does
  for such files.
* a ``mrct-pretrained-1`` dict written by ``mrct.models.pretrain_photos``: the state dict plus the
  architecture it was trained with and a label saying where it came from.

Every failure raises ValueError naming the file and summarising what is wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mrct.models.generators import RESNET_KIND, build_generator
from mrct.models.networks import ResnetGenerator

log = logging.getLogger(__name__)

#: Format tag of a generator pretrained by this package.
PRETRAINED_FORMAT = "mrct-pretrained-1"
_LEGACY_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")


def _read(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretrained weight file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt zip, truncated pickle, foreign format: all the same to us
        raise ValueError(f"{path}: expected a PyTorch state dict, could not read the file ({error})") from None


def _as_state_dict(path: Path, obj: Any) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{path}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{path}: expected a state dict of tensors, {len(bad)} entries are not tensors: {bad[:5]}")
    return dict(obj)


def drop_legacy_norm_buffers(
    state_dict: Mapping[str, torch.Tensor], expected_keys: set[str]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Remove instance-norm running statistics that the target network does not have."""
    kept, dropped = {}, []
    for key, value in state_dict.items():
        if key.endswith(_LEGACY_SUFFIXES) and key not in expected_keys:
            dropped.append(key)
        else:
            kept[key] = value
    return kept, dropped


def fill_batch_norm_counters(
    state_dict: Mapping[str, torch.Tensor], net: nn.Module
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Add the ``num_batches_tracked`` counters of ``net``'s batch norms that a pre-0.4.1 file lacks."""
    filled, added = dict(state_dict), []
    for name, module in net.named_modules():
        key = f"{name}.num_batches_tracked"
        if isinstance(module, nn.BatchNorm2d) and module.track_running_stats and key not in filled:
            filled[key] = torch.tensor(0, dtype=torch.long)
            added.append(key)
    return filled, added


def _summarise(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown}, ... ({len(names)} in all)" if len(names) > limit else shown


def load_state_dict_strict(net: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    """Strict load with an error that lists missing and unexpected keys and shape mismatches."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k}: file {tuple(state_dict[k].shape)} vs network {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_summarise(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_summarise(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches: {_summarise(shapes, 3)}")
    if problems:
        raise ValueError(f"{path}: does not fit the generator architecture {_arch_text(net)}; " + "; ".join(problems))
    net.load_state_dict(state_dict, strict=True)


def _arch_text(net: torch.nn.Module) -> str:
    arch = getattr(net, "architecture", {})
    return ", ".join(f"{k}={v}" for k, v in arch.items() if k != "adapter_units") or type(net).__name__


def load_pretrained_generator(path: str | Path, architecture: Mapping[str, int],
                              kind: str = RESNET_KIND) -> nn.Module:
    """A generator of class ``kind`` and ``architecture`` with the weights of ``path`` (zoo or
    mrct-pretrained file).

    ``architecture`` holds the class's keyword arguments without adapters; adapters are added
    by the caller afterwards so that pretrained files never need to know about them.
    """
    path = Path(path)
    obj = _read(path)
    if isinstance(obj, Mapping) and obj.get("format") == PRETRAINED_FORMAT:
        stored = dict(obj["architecture"])
        if any(stored.get(k) != v for k, v in architecture.items()):
            raise ValueError(
                f"{path}: pretrained with architecture {stored}, but {dict(architecture)} is configured; "
                "rerun the pretraining rule"
            )
        log.info("%s: %s", path, obj.get("source", "pretrained by mrct"))
        state = _as_state_dict(path, obj["state_dict"])
    else:
        state = _as_state_dict(path, obj)
    net = build_generator(kind, architecture)
    state, dropped = drop_legacy_norm_buffers(state, set(net.state_dict()))
    if dropped:
        log.info("%s: dropped %d legacy instance-norm buffers (e.g. %s)", path, len(dropped), dropped[0])
    state, added = fill_batch_norm_counters(state, net)
    if added:
        log.info("%s: %d batch-norm counters absent (a pre-0.4.1 file), started at 0", path, len(added))
    load_state_dict_strict(net, state, path)
    return net


def save_pretrained_generator(path: str | Path, net: ResnetGenerator, source: str, extra: Mapping[str, Any]) -> None:
    """Write a ``mrct-pretrained-1`` file (the caller makes it atomic)."""
    arch = {k: v for k, v in net.architecture.items() if k != "adapter_units"}
    torch.save(
        {
            "format": PRETRAINED_FORMAT,
            "architecture": arch,
            "source": source,
            **dict(extra),
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        },
        path,
    )


def fetch_zoo_weights(url: str, dest: str | Path, architecture: Mapping[str, int], lock_file: str | Path,
                      retries: int = 3, timeout: float = 60, kind: str = RESNET_KIND) -> Path:
    """Download a zoo generator (sha256 recorded in ``lock_file`` on first download, verified
    later) and check that it loads strictly into a ``kind`` generator of ``architecture``.

    A file that downloads but does not load (an HTML error page, a truncated or foreign file)
    fails here rather than in training; its lock record is removed with it, so that the next
    attempt records the digest of a good file instead of insisting on the bad one.
    """
    from mrct.io.download import download  # the data stage's verified, atomic downloader

    dest, lock_file = Path(dest), Path(lock_file)
    had_lock, had_file = lock_file.exists(), dest.exists()
    download(url, dest, lock_file=lock_file, retries=retries, timeout=timeout)
    try:
        net = load_pretrained_generator(dest, architecture, kind)
    except ValueError:
        if not had_lock:
            lock_file.unlink(missing_ok=True)
        if not had_file:  # downloaded just now: remove it; a file placed by hand is left to its owner
            dest.unlink(missing_ok=True)
        raise
    log.info("%s: valid zoo generator (%d parameters) from %s", dest, sum(p.numel() for p in net.parameters()), url)
    return dest
