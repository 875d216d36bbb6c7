"""The precision a run trains in: forced by ``amp``, or on a CPU chosen by timing the run's own training step.

Whether bf16 autocast is faster than fp32 on a CPU depends on the processor (native bf16 or emulated), on the
box and the network widths (small matrices are bound by per-operation costs, where the casts of autocast
cost more than the products save) and on the batch, so CPU flags alone do not tell. With ``amp`` None
("auto", the default) a CPU run times a few optimisation steps of a copy of its own model on its own first
batch in each precision and trains in the faster; bf16 must be :data:`BF16_MARGIN` faster to be taken (fp32 is
exact to more digits). The choice is cached per machine, model shape and batch (:class:`PrecisionCache`), so
reruns choose the same precision without measuring, and it is stored in the run's config (``precision``), so a
resumed run continues in the precision it started with. On a CUDA GPU the reduced precision is always faster
(bf16, or fp16 with loss scaling before compute capability 8.0) and nothing is measured.

``amp`` True forces the reduced precision (bf16 on a CPU, also where it is emulated), False forces fp32.
Configs written before ``precision`` existed resume with the rule they were trained with: reduced precision
where the device has native support (``models.precision.amp_helps``).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import platform
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from cryoscape.models.precision import amp_helps, amp_policy

log = logging.getLogger("cryoscape.training")

#: The precisions a CPU run chooses between.
CPU_CANDIDATES = ("fp32", "bf16")
#: bf16 is chosen only when its step is at least this fraction faster than fp32's (0.03: 3 % less time).
BF16_MARGIN = 0.03
#: Steps run before timing (the first pays for allocations and kernel choices) and steps timed, per precision.
WARMUP_STEPS = 1
TIMED_STEPS = 2
#: Environment variable naming the folder of the cache (default ``$XDG_CACHE_HOME/cryoscape`` or
#: ``~/.cache/cryoscape``).
CACHE_DIR_ENV = "CRYOSCAPE_CACHE_DIR"
#: Environment variables that change which CPU kernels run (part of the cache key).
ISA_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY")


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision of a run and why.

    Attributes
    ----------
    precision : str
        ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    reason : str
        One line for the log (``forced by --amp``, ``measured: ...``, ``cached: ...``).
    seconds_per_step : dict of str to float
        The measured times (empty when nothing was measured).
    """

    precision: str
    reason: str
    seconds_per_step: Mapping[str, float]


def cache_dir() -> Path:
    """Folder of cryoscape's per-machine caches (:data:`CACHE_DIR_ENV`, else the XDG cache folder)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cryoscape"


def cpu_description() -> str:
    """The processor's model name and bf16-related ISA flags, as /proc/cpuinfo gives them (else platform)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                if flags and model:
                    break
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model} [{' '.join(isa)}]"


class PrecisionCache:
    """A JSON file of measured choices: key (machine, threads, torch, ISA limits, model shape, batch) → choice.

    Reads tolerate a missing or damaged file (nothing cached); writes are atomic (temporary file, rename) and a
    write that fails is logged, never fatal.
    """

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else cache_dir() / "precision.json"

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> dict | None:
        entry = self._read().get(key)
        if isinstance(entry, dict) and entry.get("precision") in CPU_CANDIDATES:
            return entry
        return None

    def put(self, key: str, entry: dict) -> None:
        data = self._read()
        data[key] = entry
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".precision.", dir=self.path.parent)
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("could not cache the precision choice in %s: %s", self.path, exc)


def cache_key(shape: Mapping[str, object], batch_size: int) -> str:
    """The key of a measurement: this machine and its kernel limits, torch and its threads, the model, the batch."""
    limits = ",".join(f"{name}={os.environ[name]}" for name in ISA_ENV if os.environ.get(name))
    parts = [cpu_description(), f"torch {torch.__version__}", f"threads {torch.get_num_threads()}", limits,
             ",".join(f"{k}={shape[k]}" for k in sorted(shape)), f"batch {int(batch_size)}"]
    return " | ".join(parts)


def time_steps(module: torch.nn.Module, batch, precision: str, device: torch.device,
               warmup: int = WARMUP_STEPS, steps: int = TIMED_STEPS) -> float:
    """Seconds per optimisation step of a copy of ``module`` (a ``ReconstructionObjective``) on ``batch`` in
    ``precision``; ``module``, its optimizer and torch's random state are left as they were."""
    from cryoscape.training.step import TrainStep, make_optimizer

    rng = torch.get_rng_state()
    try:
        trial = copy.deepcopy(module)
        trial.train()
        stepper = TrainStep(trial, make_optimizer(trial.parameters(), 1e-4, 0.0, device),
                            amp_policy(device, precision), device)
        generator = torch.Generator(device=device).manual_seed(0)
        for _ in range(warmup):
            stepper(batch, 0.1, generator)
        stepper.sync()
        start = time.perf_counter()
        for _ in range(steps):
            stepper(batch, 0.1, generator)
        stepper.sync()
        return (time.perf_counter() - start) / max(1, steps)
    finally:
        torch.set_rng_state(rng)


def choose_precision(amp: bool | None, device: torch.device, *, legacy: bool = False,
                     measure: Callable[[str], float] | None = None, key: str | None = None,
                     cache: PrecisionCache | None = None) -> PrecisionChoice:
    """The precision of a run that has none stored yet (module docstring).

    Parameters
    ----------
    amp : bool or None
        The run's ``amp``: True (reduced precision), False (fp32) or None (auto).
    device : torch.device
    legacy : bool
        A run resumed from a config written before the choice was stored: the rule it was trained with
        (reduced precision where the device has native support, unless ``amp`` is False).
    measure : callable, optional
        ``precision -> seconds per step`` (:func:`time_steps` of the run's model and batch); needed for an
        "auto" CPU run that is not cached. None on a CPU: the legacy rule (e.g. several processes, which must
        agree without measuring).
    key : str, optional
        The cache key of the measurement (:func:`cache_key`); None: no caching.
    cache : PrecisionCache, optional
        Default: the user's cache file.
    """
    if legacy or (amp is None and device.type == "cpu" and measure is None):
        reduced = amp is not False and amp_helps(device)
        why = "the rule of runs written before the choice was stored" if legacy else "native bf16 or not"
        return PrecisionChoice(amp_policy(device, reduced).name, why, {})
    if amp is False:
        return PrecisionChoice("fp32", "forced by --no-amp", {})
    if amp is True or device.type != "cpu":
        name = amp_policy(device, True if amp is True else "auto").name
        return PrecisionChoice(name, "forced by --amp" if amp is True else f"the {device.type} default", {})
    cache = cache or PrecisionCache()
    if key is not None:
        entry = cache.get(key)
        if entry is not None:
            return PrecisionChoice(entry["precision"], f"cached in {cache.path}", entry.get("seconds_per_step", {}))
    seconds = {name: float(measure(name)) for name in CPU_CANDIDATES}
    faster = seconds["bf16"] <= (1.0 - BF16_MARGIN) * seconds["fp32"]
    precision = "bf16" if faster else "fp32"
    if key is not None:
        cache.put(key, {"precision": precision, "seconds_per_step": seconds})
    timing = ", ".join(f"{name} {value:.3g} s" for name, value in seconds.items())
    return PrecisionChoice(precision, f"measured per step: {timing}", seconds)
