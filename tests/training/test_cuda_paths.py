"""The CUDA code paths of training, exercised on CPU: precision choice, GradScaler, no host sync in the step,
checkpointed scaler state, deferred non-finite check, generator restore across devices, fused Adam."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from cryoscape.data.dataset import HartleyDataset
from cryoscape.errors import TrainingError
from cryoscape.models import ModelConfig, build_model
from cryoscape.models.precision import (
    AmpPolicy,
    amp_policy,
    autocast_context,
    cuda_supports_bf16,
    make_grad_scaler,
    reduced_dtype,
)
from cryoscape.runs import RunDir
from cryoscape.training import loop
from cryoscape.training.step import ReconstructionObjective, TrainStep, make_optimizer, restore_generator

from .synthetic import blob_volume, write_dataset

BOX = 16


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("CRYOSCAPE_NO_PROGRESS", "1")
    monkeypatch.setattr(torch.version, "hip", None)


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    vol = blob_volume(BOX, [(0, 0, 0), (3, 0, 0)])
    return write_dataset(tmp_path_factory.mktemp("cuda_paths"), [vol], 40, seed=3, noise_std=0.3)


@pytest.fixture(scope="module")
def dataset(syn):
    from cryoscape.data.particles import load_particles

    particles = load_particles(syn.stack, poses=syn.poses, ctf=syn.ctf)
    return HartleyDataset(particles, data_std=float(BOX), in_memory=True)


def capability(major, minor=0):
    return lambda device: (major, minor)


# ----------------------------------------------------------------------------------------------- precision choice
@pytest.mark.parametrize(
    ("cap", "asked", "expected"),
    [
        ((8, 0), "auto", torch.bfloat16),  # A100: native bf16
        ((9, 0), "auto", torch.bfloat16),  # H100
        ((7, 5), "auto", torch.float16),  # T4: no native bf16 -> fp16
        ((7, 0), "bf16", torch.float16),  # V100 asked for bf16: falls back to fp16 (emulated bf16 is slow)
        ((8, 6), "fp16", torch.float16),
        ((8, 6), "fp32", None),
        ((7, 5), False, None),
        ((8, 0), True, torch.bfloat16),
    ],
)
def test_cuda_amp_dtype_follows_the_capability(cap, asked, expected):
    policy = amp_policy("cuda", asked, capability=capability(*cap))
    assert policy.device_type == "cuda"
    assert policy.dtype == expected
    assert policy.needs_scaler == (expected == torch.float16)  # fp16 needs a GradScaler, bf16 does not
    assert policy.enabled == (expected is not None)


def test_reduced_dtype_and_bf16_support_ask_the_capability():
    assert cuda_supports_bf16("cuda:1", capability(8, 0))
    assert not cuda_supports_bf16("cuda:1", capability(7, 5))
    assert reduced_dtype("cuda", capability(7, 5)) == torch.float16
    assert reduced_dtype("cuda", capability(8, 9)) == torch.bfloat16
    assert reduced_dtype("cpu") == torch.bfloat16


def test_cpu_amp_policy():
    assert amp_policy("cpu", "auto", cpu_bf16=True).dtype == torch.bfloat16
    assert amp_policy("cpu", "auto", cpu_bf16=False).dtype is None
    assert amp_policy("cpu", "fp16").dtype == torch.float16
    assert amp_policy("cpu", "fp16").name == "fp16"
    with pytest.raises(ValueError, match="precision"):
        amp_policy("cpu", "fp8")


def test_grad_scaler_only_for_fp16():
    assert make_grad_scaler(AmpPolicy("cpu", torch.float16)).is_enabled()
    assert not make_grad_scaler(AmpPolicy("cpu", torch.bfloat16)).is_enabled()
    assert not make_grad_scaler(AmpPolicy("cpu", None)).is_enabled()


def test_autocast_context_dtypes():
    x = torch.ones(2, 2)
    with autocast_context("cpu", torch.float16):
        assert (x @ x).dtype == torch.float16
    with autocast_context("cpu", torch.bfloat16):
        assert (x @ x).dtype == torch.bfloat16
    with autocast_context("cpu", False):
        assert (x @ x).dtype == torch.float32
    with autocast_context("cpu", torch.float32):
        assert (x @ x).dtype == torch.float32


# ------------------------------------------------------------------------------------------------ no host sync
#: aten operators whose result a CUDA device must hand to the host: .item(), bool(t), float(t) (all
#: ``_local_scalar_dense``), and the data-dependent shapes (boolean masks, nonzero, unique).
SYNC_OPS = ("_local_scalar_dense", "nonzero", "masked_select", "unique", "is_nonzero", "equal")


class NoHostSync(TorchDispatchMode):
    """Raise on any operator that would synchronise a CUDA device with the host; also on ``Tensor.cpu``,
    ``.numpy``, ``.tolist``, ``.item`` and ``torch.cuda.synchronize`` (patched while active)."""

    def __init__(self, monkeypatch):
        super().__init__()
        self.monkeypatch = monkeypatch

    def __enter__(self):
        def refuse(label):
            def call(*args, **kwargs):
                raise AssertionError(f"host synchronisation in the step: {label}")

            return call

        for name in ("cpu", "numpy", "tolist", "item"):
            self.monkeypatch.setattr(torch.Tensor, name, refuse(f"Tensor.{name}"))
        self.monkeypatch.setattr(torch.cuda, "synchronize", refuse("torch.cuda.synchronize"))
        return super().__enter__()

    def __exit__(self, *exc):
        out = super().__exit__(*exc)
        self.monkeypatch.undo()
        return out

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name in SYNC_OPS:
            raise AssertionError(f"host synchronisation in the step: aten.{func.__name__}")
        if name.startswith(("index", "_index_put")) and len(args) > 1 and isinstance(args[1], (list, tuple)):
            if any(torch.is_tensor(i) and i.dtype == torch.bool for i in args[1]):  # a mask: nonzero inside
                raise AssertionError(f"host synchronisation in the step: aten.{func.__name__} with a mask")
        return func(*args, **(kwargs or {}))


def test_the_sync_guard_catches_syncs(monkeypatch):
    """The guard below is not vacuous: each of these would stall a GPU."""
    x = torch.randn(8)
    for bad in (lambda: x.sum().item(), lambda: bool(x.sum() > 0), lambda: float(x.max()), lambda: x[x > 0],
                lambda: torch.nonzero(x), lambda: x.cpu(), lambda: x.tolist()):
        with pytest.raises(AssertionError, match="host synchronisation"), NoHostSync(monkeypatch):
            bad()


def make_step(dataset, policy: AmpPolicy, fused: bool = True, domain: str = "hartley", zdim: int = 2,
              defer: bool | None = None, sync_images: int = 1000, **model):
    torch.manual_seed(0)
    config = ModelConfig(zdim=zdim, enc_dim=16, enc_layers=2, dec_dim=16, dec_layers=2, domain=domain, **model)
    module = ReconstructionObjective(build_model(config, BOX), BOX, BOX / 2)
    optimizer = make_optimizer(module.parameters(), 1e-3, 0.0, "cpu", fused=fused)
    return TrainStep(module, optimizer, policy, "cpu", sync_images=sync_images, defer=defer)


#: The pair decoder without the seam band (``ModelConfig.seam_band_px``, when the field exists).
NO_SEAM_BAND = {"seam_band_px": 0.0} if "seam_band_px" in {f.name for f in dataclasses.fields(ModelConfig)} else {}
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize(("domain", "zdim"), [("hartley", 2), ("hartley_full", 2), ("hartley", 0)])
def test_training_step_has_no_host_sync(dataset, monkeypatch, precision, domain, zdim):
    """The step as CUDA runs it (fused Adam, GradScaler in fp16, sums on the device) reads nothing back."""
    extra = NO_SEAM_BAND if domain == "hartley" else {}
    stepper = make_step(dataset, AmpPolicy("cpu", DTYPES[precision]), domain=domain, zdim=zdim, **extra)
    generator = torch.Generator().manual_seed(0)
    stepper(dataset.get_batch(np.arange(8)), 0.5, generator)  # first step creates the optimizer state
    before = [p.detach().clone() for p in stepper.module.parameters()]
    batch = dataset.get_batch(np.arange(8, 16))
    with NoHostSync(monkeypatch):
        for _ in range(2):
            stepper(batch, 0.5, generator)
    after = list(stepper.module.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))  # the step did train
    totals = stepper.sync()
    assert totals.finite and totals.steps == 3 and totals.images == 24
    assert np.isfinite(totals.loss) and totals.loss > 0


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_pair_decoder_with_the_seam_band_has_no_host_sync_given_the_host_bound(dataset, monkeypatch, precision):
    # the loop passes the bound computed on the host from the batch's rotations (as on CUDA)
    stepper = make_step(dataset, AmpPolicy("cpu", DTYPES[precision]), domain="hartley", zdim=2)
    rotations = np.asarray(dataset.particles.poses.rotations, dtype=np.float32)
    generator = torch.Generator().manual_seed(0)
    stepper(dataset.get_batch(np.arange(8)), 0.5, generator, stepper.module.seam_band_rows(rotations[:8]))
    batch = dataset.get_batch(np.arange(8, 16))
    rows = stepper.module.seam_band_rows(rotations[batch.positions_host])
    with NoHostSync(monkeypatch):
        stepper(batch, 0.5, generator, rows)
    stepper.host_rotations = rotations  # as the loop makes it on CUDA: the step bounds the band itself
    with NoHostSync(monkeypatch):
        stepper(dataset.get_batch(np.arange(16, 24)), 0.5, generator)
    totals = stepper.sync()
    assert totals.finite and not totals.band_overflow and totals.steps == 3


def test_without_the_host_bound_the_seam_band_is_counted_on_the_device(dataset, monkeypatch):
    stepper = make_step(dataset, AmpPolicy("cpu", None), domain="hartley", zdim=2)
    generator = torch.Generator().manual_seed(0)
    stepper(dataset.get_batch(np.arange(8)), 0.5, generator)
    with pytest.raises(AssertionError, match="host synchronisation"), NoHostSync(monkeypatch):
        stepper(dataset.get_batch(np.arange(8, 16)), 0.5, generator)


def test_a_seam_band_bound_too_small_is_reported_by_sync(dataset):
    stepper = make_step(dataset, AmpPolicy("cpu", None), domain="hartley", zdim=2)
    generator = torch.Generator().manual_seed(0)
    stepper(dataset.get_batch(np.arange(8)), 0.5, generator, 1)  # the band of 8 images has more than one point
    assert stepper.sync().band_overflow


@pytest.mark.skipif(not hasattr(ReconstructionObjective, "set_active_radius_px"), reason="no frequency marching")
def test_step_on_a_marching_disc_has_no_host_sync(dataset, monkeypatch):
    stepper = make_step(dataset, AmpPolicy("cpu", torch.float16), **NO_SEAM_BAND)
    stepper.module.set_active_radius_px(4.0)  # set by the loop between steps (host-side choice of points)
    generator = torch.Generator().manual_seed(0)
    stepper(dataset.get_batch(np.arange(8)), 0.5, generator)
    with NoHostSync(monkeypatch):
        stepper(dataset.get_batch(np.arange(8, 16)), 0.5, generator)
    assert stepper.sync().finite


def test_unfused_adam_with_a_scaler_would_sync(dataset, monkeypatch):
    """Why CUDA uses the fused Adam: the default one makes GradScaler read its inf flag on the host."""
    stepper = make_step(dataset, AmpPolicy("cpu", torch.float16), fused=False)
    generator = torch.Generator().manual_seed(0)
    stepper(dataset.get_batch(np.arange(8)), 0.5, generator)
    with pytest.raises(AssertionError, match="host synchronisation"), NoHostSync(monkeypatch):
        stepper(dataset.get_batch(np.arange(8)), 0.5, generator)


def test_make_optimizer_is_fused_on_cuda_only():
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert make_optimizer(params, 1e-3, 0.0, "cuda").defaults["fused"] is True
    assert not make_optimizer(params, 1e-3, 0.0, "cpu").defaults["fused"]


# -------------------------------------------------------------------------------------------------- GradScaler
def test_fp16_scaler_skips_a_non_finite_step_and_lowers_the_scale(dataset):
    stepper = make_step(dataset, AmpPolicy("cpu", torch.float16))
    generator = torch.Generator().manual_seed(0)
    stepper(dataset.get_batch(np.arange(8)), 0.5, generator)
    scale = stepper.scaler.get_scale()
    assert scale == 2.0**16
    before = [p.detach().clone() for p in stepper.module.parameters()]
    bad = dataset.get_batch(np.arange(8, 16))
    bad = dataclasses.replace(bad, images=bad.images.clone())
    bad.images[3, BOX // 2, BOX // 2 + 1] = float("inf")  # inside the loss disc
    stepper(bad, 0.5, generator)
    for a, b in zip(before, stepper.module.parameters(), strict=True):
        assert torch.equal(a, b)  # skipped: no NaN reached the weights
    assert stepper.scaler.get_scale() == scale / 2
    totals = stepper.sync()
    assert totals.first_bad_step == 1 and not np.isfinite(totals.first_bad_loss)
    np.testing.assert_array_equal(totals.first_bad_positions.numpy(), np.arange(8, 16))


def _state(stepper, generator):
    return {"model": stepper.module.state_dict(), "optimizer": stepper.optimizer.state_dict(),
            "scaler": stepper.state_dict(), "rng": generator.get_state()}


def test_fp16_resume_with_the_scaler_state_is_bit_identical(dataset, tmp_path):
    batches = [dataset.get_batch(np.arange(i, i + 8)) for i in range(0, 32, 8)]
    policy = AmpPolicy("cpu", torch.float16)

    def train(stepper, generator, todo):
        for i in todo:
            stepper(batches[i], 0.5, generator)
            if i == 1:
                stepper.scaler.update(new_scale=1024.0)  # a scale a fresh scaler would not have

    straight, gen_s = make_step(dataset, policy), torch.Generator().manual_seed(5)
    train(straight, gen_s, range(4))

    first, gen_f = make_step(dataset, policy), torch.Generator().manual_seed(5)
    train(first, gen_f, range(2))
    assert first.state_dict()["scale"] == 1024.0
    torch.save(_state(first, gen_f), tmp_path / "ckpt.pt")

    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    resumed, gen_r = make_step(dataset, policy), torch.Generator()
    resumed.module.load_state_dict(state["model"])
    resumed.optimizer.load_state_dict(state["optimizer"])
    resumed.load_state_dict(state["scaler"])
    assert restore_generator(gen_r, state["rng"], fallback_seed=0)
    train(resumed, gen_r, range(2, 4))
    assert resumed.scaler.get_scale() == straight.scaler.get_scale()
    for a, b in zip(straight.module.parameters(), resumed.module.parameters(), strict=True):
        assert torch.equal(a, b)

    # without the scaler state the resumed run differs (the test can fail)
    other, gen_o = make_step(dataset, policy), torch.Generator()
    other.module.load_state_dict(state["model"])
    other.optimizer.load_state_dict(state["optimizer"])
    restore_generator(gen_o, state["rng"], fallback_seed=0)
    train(other, gen_o, range(2, 4))
    assert other.scaler.get_scale() != straight.scaler.get_scale()


def test_loop_checkpoints_the_scaler_and_resumes_bit_identically(syn, tmp_path, monkeypatch):
    """fit() in fp16 (forced on CPU): weights.N.pt holds the scaler; 1 + 1 epochs equal 2 epochs."""
    from cryoscape.training.config import DataConfig, TrainConfig

    monkeypatch.setattr(loop, "amp_policy", lambda device, amp: AmpPolicy("cpu", torch.float16))
    model = ModelConfig(zdim=1, enc_dim=16, enc_layers=1, dec_dim=16, dec_layers=1)
    data = DataConfig(particles=str(syn.stack), poses=str(syn.poses), ctf=str(syn.ctf))
    config = TrainConfig(model=model, data=data, num_epochs=2, batch_size=8, lr=1e-3, amp=True)
    loop.fit(config, tmp_path / "a")
    loop.fit(dataclasses.replace(config, num_epochs=1), tmp_path / "b")
    ckpt = RunDir(tmp_path / "b").load_checkpoint(1)
    assert ckpt["scaler"]["scale"] > 0
    loop.fit(None, resume_from=tmp_path / "b", changes={"num_epochs": 2})
    a = RunDir(tmp_path / "a").load_checkpoint(2)
    b = RunDir(tmp_path / "b").load_checkpoint(2)
    assert a["scaler"] == b["scaler"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


# --------------------------------------------------------------------------------- deferred non-finite check
def test_deferred_check_names_the_first_bad_batch(dataset):
    stepper = make_step(dataset, AmpPolicy("cpu", None), defer=True, sync_images=24)
    generator = torch.Generator().manual_seed(0)
    due = []
    for i in range(3):
        batch = dataset.get_batch(np.arange(8 * i, 8 * i + 8))
        if i == 1:
            batch = dataclasses.replace(batch, images=batch.images * float("nan"))
        stepper.forward(batch, 0.5, generator)
        due.append(stepper.due())
    assert due == [False, False, True]
    totals = stepper.sync()
    assert totals.first_bad_step == 1
    np.testing.assert_array_equal(totals.first_bad_positions.numpy(), np.arange(8, 16))
    assert not stepper.due()


def test_fit_with_the_gpu_cadence_stops_at_the_first_bad_batch(syn, tmp_path, monkeypatch):
    """As on CUDA (loss read back once per log interval), a NaN at epoch 2 batch 3 is reported as such."""
    from cryoscape.training.config import DataConfig, TrainConfig

    monkeypatch.setattr(loop, "TrainStep", functools.partial(TrainStep, defer=True))
    original = loop.ReconstructionObjective.forward
    calls = {"n": 0}
    batches_per_epoch = 40 // 8

    def poisoned(self, *args, **kwargs):
        parts = original(self, *args, **kwargs)
        calls["n"] += 1 if self.training else 0
        if self.training and calls["n"] == batches_per_epoch + 3:
            return dataclasses.replace(parts, loss=parts.loss * float("nan"))
        return parts

    monkeypatch.setattr(loop.ReconstructionObjective, "forward", poisoned)
    model = ModelConfig(zdim=1, enc_dim=16, enc_layers=1, dec_dim=16, dec_layers=1)
    data = DataConfig(particles=str(syn.stack), poses=str(syn.poses), ctf=str(syn.ctf))
    config = TrainConfig(model=model, data=data, num_epochs=3, batch_size=8, lr=1e-3, amp=False,
                         log_interval=10_000)
    with pytest.raises(TrainingError, match=r"epoch 2, batch 3 of 5.*weights\.1\.pt"):
        loop.fit(config, tmp_path / "run")
    assert RunDir(tmp_path / "run").epochs() == [1]


# ------------------------------------------------------------------------------------------ generator restore
def test_generator_state_from_another_device_reseeds():
    saved = torch.Generator().manual_seed(3)
    gen = torch.Generator()
    assert restore_generator(gen, saved.get_state(), fallback_seed=7)
    assert torch.equal(gen.get_state(), saved.get_state())
    cuda_like = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state: seed and offset
    assert not restore_generator(gen, cuda_like, fallback_seed=7)
    expected = torch.randn(4, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.randn(4, generator=gen), expected)
