"""Mixed precision: which reduced dtype a device runs fast, the autocast context, and the gradient scaler.

On CPU, bf16 autocast is only worth it (and only used by default) where the CPU has native bf16 matrix
instructions (AVX-512 BF16 or AMX); elsewhere PyTorch emulates bf16 and is slower than fp32.

On CUDA, bf16 is used on GPUs with native bf16 tensor cores (compute capability 8.0 and later: A100, RTX 30xx,
L4, H100, ...), else fp16. (``torch.cuda.is_bf16_supported()`` also answers True on older GPUs, where bf16 is
emulated and slow, so the capability is asked for directly.) fp16 has a narrow exponent range: small gradients
underflow to zero, so fp16 training multiplies the loss by a dynamic scale (``torch.amp.GradScaler``,
:func:`make_grad_scaler`); bf16 has fp32's exponent range and needs no scaler.

:class:`AmpPolicy` is the one decision a training run takes from these: autocast or not, in which dtype, and
whether a scaler is needed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

#: First CUDA compute capability (major version) with native bf16 tensor cores (Ampere).
CUDA_BF16_MIN_MAJOR = 8

#: Names of the precisions a caller may ask for (``"auto"``: the device's fast reduced precision, or fp32).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


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


def _cuda_capability(device: torch.device) -> tuple[int, int]:
    return torch.cuda.get_device_capability(device)


def cuda_supports_bf16(
    device: torch.device | str = "cuda",
    capability: Callable[[torch.device], tuple[int, int]] | None = None,
) -> bool:
    """Whether the CUDA ``device`` has native bf16 (compute capability >= 8.0, or any ROCm GPU).

    Parameters
    ----------
    device : torch.device or str
        A CUDA device (``cuda`` means the current one).
    capability : callable, optional
        ``device -> (major, minor)``; default ``torch.cuda.get_device_capability`` (tests pass a stand-in).
    """
    device = torch.device(device)
    if getattr(torch.version, "hip", None):
        return True
    major, _ = (capability or _cuda_capability)(device)
    return major >= CUDA_BF16_MIN_MAJOR


def amp_helps(device: torch.device | str) -> bool:
    """Whether autocast is expected to speed up ``device``: CUDA, or a CPU with native bf16."""
    device = torch.device(device)
    return device.type == "cuda" or (device.type == "cpu" and cpu_supports_bf16())


def reduced_dtype(
    device: torch.device | str, capability: Callable[[torch.device], tuple[int, int]] | None = None
) -> torch.dtype:
    """The reduced-precision dtype for ``device``: bf16 on CPU and on CUDA GPUs with native bf16, else fp16.

    ``capability`` as in :func:`cuda_supports_bf16`.
    """
    device = torch.device(device)
    if device.type == "cuda" and not cuda_supports_bf16(device, capability):
        return torch.float16
    return torch.bfloat16


@dataclass(frozen=True)
class AmpPolicy:
    """How a device trains: autocast dtype (None = fp32, no autocast) and whether gradients are scaled.

    Attributes
    ----------
    device_type : str
        ``"cpu"`` or ``"cuda"``.
    dtype : torch.dtype or None
        Autocast dtype (``torch.bfloat16`` or ``torch.float16``), or None for fp32.
    """

    device_type: str
    dtype: torch.dtype | None = None

    @property
    def enabled(self) -> bool:
        """Whether the networks run under autocast."""
        return self.dtype is not None

    @property
    def needs_scaler(self) -> bool:
        """fp16 needs loss scaling (its smallest normal is 6e-5: gradients underflow); bf16 and fp32 do not."""
        return self.dtype == torch.float16

    @property
    def name(self) -> str:
        """``"fp32"``, ``"bf16"`` or ``"fp16"``."""
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self):
        """The autocast context of this policy (a null context in fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def amp_policy(
    device: torch.device | str,
    precision: str | bool = "auto",
    capability: Callable[[torch.device], tuple[int, int]] | None = None,
    cpu_bf16: bool | None = None,
) -> AmpPolicy:
    """The :class:`AmpPolicy` for ``device`` and the precision asked for.

    Parameters
    ----------
    device : torch.device or str
    precision : {"auto", "fp32", "bf16", "fp16"} or bool
        ``"auto"`` / True: the device's fast reduced precision (:func:`reduced_dtype`) where it helps
        (:func:`amp_helps`), else fp32. False: fp32. ``"bf16"`` on a CUDA GPU without native bf16 falls back
        to fp16 (emulated bf16 is slower than fp32). ``"fp16"`` and ``"bf16"`` are otherwise taken as asked.
    capability : callable, optional
        CUDA capability query (see :func:`cuda_supports_bf16`), for tests.
    cpu_bf16 : bool, optional
        Whether the CPU has native bf16 (default: :func:`cpu_supports_bf16`), for tests.
    """
    device = torch.device(device)
    if precision is True:
        precision = "auto"
    elif precision is False:
        precision = "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return AmpPolicy(device.type, None)
    if precision == "auto":
        if device.type == "cuda":
            return AmpPolicy("cuda", reduced_dtype(device, capability))
        helps = cpu_supports_bf16() if cpu_bf16 is None else cpu_bf16
        return AmpPolicy(device.type, torch.bfloat16 if helps and device.type == "cpu" else None)
    dtype = _DTYPES[precision]
    if dtype == torch.bfloat16 and device.type == "cuda" and not cuda_supports_bf16(device, capability):
        dtype = torch.float16
    return AmpPolicy(device.type, dtype)


def make_grad_scaler(policy: AmpPolicy) -> torch.amp.GradScaler:
    """A ``torch.amp.GradScaler`` for ``policy``: enabled for fp16, a pass-through otherwise.

    A disabled scaler's ``scale``/``step``/``update`` are the plain ``loss``, ``optimizer.step()`` and nothing,
    so one code path serves every precision.
    """
    return torch.amp.GradScaler(policy.device_type, enabled=policy.needs_scaler)


def autocast_context(device: torch.device | str, enabled: bool | torch.dtype):
    """``torch.autocast`` for ``device``, or a null context.

    ``enabled`` is a bool (True: :func:`reduced_dtype` of the device) or the autocast dtype itself.
    """
    device = torch.device(device)
    if enabled is False or enabled is None:
        return contextlib.nullcontext()
    dtype = enabled if isinstance(enabled, torch.dtype) else reduced_dtype(device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
