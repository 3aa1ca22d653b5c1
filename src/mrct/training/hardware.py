"""How a training run uses its device: precision, memory layout, TF32, cuDNN, compilation.

Each choice is a ``train:`` config key and part of the checkpoint fingerprint (each can change
the numbers). On the CPU they stay out of the way so that CPU runs are bit-exact: the layout
stays contiguous, TF32 and cuDNN do not apply, ``autocast: auto`` means fp32. On CUDA:

- ``autocast: auto`` runs the networks in bf16 where the GPU supports it (Ampere and newer),
  else fp32. bf16 keeps fp32's exponent range, so no gradient scaler is needed (fp16 needs one,
  and its overflow check reads a flag back to the host every step).
- ``channels_last`` stores activations NHWC, the layout tensor-core convolutions want.
- ``tf32`` lets fp32 matmuls and convolutions use TF32 tensor cores (10-bit mantissa inputs).
- cuDNN autotuning picks the fastest convolution algorithm for the fixed image size.
- ``compile`` wraps each network in ``torch.compile`` (a one-off compilation of a minute or more,
  then fused kernels); results differ from eager mode in the last bits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from mrct.training.settings import TrainSettings


def autocast_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.autocast`` on ``device``; None means plain fp32."""
    if mode == "none" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if mode == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"train.autocast: bf16 requested but {device} does not support it; use auto or fp16")
        return torch.bfloat16
    if mode == "fp16":
        if device.type != "cuda":
            raise ValueError(f"train.autocast: fp16 needs a CUDA device, got {device}; use auto, bf16 or none")
        return torch.float16
    raise ValueError(f"train.autocast: expected auto, none, bf16 or fp16, got {mode!r}")


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def memory_format(s: TrainSettings, device: torch.device) -> torch.memory_format:
    """channels_last on CUDA when asked; the CPU keeps the contiguous layout (bit-exact path)."""
    return torch.channels_last if s.channels_last and device.type == "cuda" else torch.contiguous_format


@contextlib.contextmanager
def backend_flags(s: TrainSettings, device: torch.device) -> Iterator[None]:
    """Deterministic kernels on the CPU; TF32 and cuDNN autotuning on CUDA; all restored after.

    On CUDA some kernels (reflection-pad backward) have no deterministic version, so a GPU run
    is seeded but not bit-exact whatever these flags say; autotuning costs nothing more there.
    The global flags are restored so that callers (and other tests in one process) are unaffected.
    """
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    previous = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
                matmul.fp32_precision, conv.fp32_precision)
    torch.use_deterministic_algorithms(device.type == "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        matmul.fp32_precision = conv.fp32_precision = "tf32" if s.tf32 else "ieee"
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark = previous[1]
        matmul.fp32_precision, conv.fp32_precision = previous[2], previous[3]


def place(net: torch.nn.Module, s: TrainSettings, device: torch.device) -> None:
    """Move ``net`` to ``device`` in the run's memory layout, in training mode, compiled if asked.

    ``Module.compile`` compiles in place: the state_dict keys stay those of the eager network,
    so checkpoints and the final generator files do not depend on ``compile``.
    """
    net.to(device=device, memory_format=memory_format(s, device)).train()
    if s.compile:
        net.compile()
