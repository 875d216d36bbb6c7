"""Mixed precision: whether this machine runs bf16 natively, and the autocast context for a device.

On CPU, bf16 autocast is only worth it (and only used by default) where the CPU has native bf16 matrix
instructions (AVX-512 BF16 or AMX); elsewhere PyTorch emulates bf16 and is slower than fp32. On CUDA, bf16 is
used where supported, else fp16.
"""

from __future__ import annotations

import contextlib

import torch


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (AVX-512 BF16 or AMX)."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    for name in checks:
        fn = getattr(torch.cpu, name, None)
        try:
            if fn is not None and fn():
                return True
        except RuntimeError:  # pragma: no cover - depends on the build
            continue
    return False


def amp_helps(device: torch.device | str) -> bool:
    """Whether autocast is expected to speed up ``device``: CUDA, or a CPU with native bf16."""
    device = torch.device(device)
    return device.type == "cuda" or (device.type == "cpu" and cpu_supports_bf16())


def reduced_dtype(device: torch.device | str) -> torch.dtype:
    """The reduced-precision dtype for ``device``: bf16 on CPU and on CUDA where supported, else fp16."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def autocast_context(device: torch.device | str, enabled: bool):
    """``torch.autocast`` for ``device`` in :func:`reduced_dtype`, or a null context."""
    device = torch.device(device)
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=reduced_dtype(device))
