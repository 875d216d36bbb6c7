"""The precision of a run: forced by --amp/--no-amp, measured on a CPU (cached), kept by a resumed run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cryoscape.models import ModelConfig, build_model
from cryoscape.models import precision as precision_module
from cryoscape.runs import RunDir
from cryoscape.training import loop
from cryoscape.training import precision_choice as pc
from cryoscape.training.config import DataConfig, TrainConfig, read_run_config
from cryoscape.training.step import ReconstructionObjective

from .synthetic import two_blob_dataset

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("CRYOSCAPE_NO_PROGRESS", "1")


def _times(fp32: float, bf16: float):
    calls = []

    def measure(name):
        calls.append(name)
        return {"fp32": fp32, "bf16": bf16}[name]

    return measure, calls


@pytest.mark.parametrize(("fp32", "bf16", "expected"), [(1.0, 0.8, "bf16"), (1.0, 0.99, "fp32"), (0.7, 1.0, "fp32")])
def test_auto_on_a_cpu_takes_the_faster_precision_bf16_only_with_a_margin(tmp_path, fp32, bf16, expected):
    measure, calls = _times(fp32, bf16)
    cache = pc.PrecisionCache(tmp_path / "p.json")
    choice = pc.choose_precision(None, CPU, measure=measure, key="k", cache=cache)
    assert choice.precision == expected and sorted(calls) == ["bf16", "fp32"]
    assert choice.seconds_per_step == {"fp32": fp32, "bf16": bf16} and "measured" in choice.reason
    # the second run on this machine, model and batch takes the cached choice without measuring
    again = pc.choose_precision(None, CPU, measure=lambda name: pytest.fail("measured again"), key="k",
                                cache=cache)
    assert again.precision == expected and "cached" in again.reason
    # another key (another model or batch) measures
    other, calls = _times(1.0, 0.5)
    assert pc.choose_precision(None, CPU, measure=other, key="k2", cache=cache).precision == "bf16" and calls


def test_a_damaged_cache_is_measured_again_and_rewritten(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("{not json")
    measure, calls = _times(1.0, 0.5)
    assert pc.choose_precision(None, CPU, measure=measure, key="k", cache=pc.PrecisionCache(path)).precision == "bf16"
    assert calls and pc.PrecisionCache(path).get("k")["precision"] == "bf16"


def test_forced_choices_and_gpus_measure_nothing(monkeypatch):
    never = lambda name: pytest.fail("measured")  # noqa: E731
    assert pc.choose_precision(False, CPU, measure=never).precision == "fp32"
    assert pc.choose_precision(True, CPU, measure=never).precision == "bf16"  # forced, even where emulated
    monkeypatch.setattr(precision_module, "_cuda_capability", lambda device: (9, 0))
    assert pc.choose_precision(None, torch.device("cuda"), measure=never).precision == "bf16"
    monkeypatch.setattr(precision_module, "_cuda_capability", lambda device: (7, 0))
    assert pc.choose_precision(None, torch.device("cuda"), measure=never).precision == "fp16"
    assert pc.choose_precision(False, torch.device("cuda"), measure=never).precision == "fp32"


@pytest.mark.parametrize("native", [False, True])
def test_runs_written_before_the_choice_was_stored_keep_their_rule(monkeypatch, native):
    monkeypatch.setattr(precision_module, "cpu_supports_bf16", lambda: native)
    never = lambda name: pytest.fail("measured")  # noqa: E731
    assert pc.choose_precision(True, CPU, legacy=True, measure=never).precision == ("bf16" if native else "fp32")
    assert pc.choose_precision(False, CPU, legacy=True, measure=never).precision == "fp32"


def test_cache_key_names_the_model_and_batch():
    shape = {"dec_dim": 64, "box": 32}
    assert pc.cache_key(shape, 8) != pc.cache_key(shape, 16)
    assert pc.cache_key(shape, 8) != pc.cache_key({**shape, "dec_dim": 128}, 8)
    assert f"threads {torch.get_num_threads()}" in pc.cache_key(shape, 8)


def test_timing_steps_leaves_the_model_and_random_state_alone(tmp_path):
    from cryoscape.data.dataset import HartleyDataset
    from cryoscape.data.particles import load_particles

    syn = two_blob_dataset(tmp_path, 16, 16, seed=1)
    dataset = HartleyDataset(load_particles(syn.stack, poses=syn.poses, ctf=syn.ctf), data_std=16.0, in_memory=True)
    torch.manual_seed(0)
    module = ReconstructionObjective(build_model(ModelConfig(zdim=2, enc_dim=16, enc_layers=1, dec_dim=16,
                                                             dec_layers=1), 16), 16, 8.0)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    rng = torch.get_rng_state()
    batch = dataset.get_batch(np.arange(8))
    for name in ("fp32", "bf16"):
        assert pc.time_steps(module, batch, name, CPU) > 0
    assert torch.equal(torch.get_rng_state(), rng)
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key]), key


def _config(syn, **changes):
    data = DataConfig(particles=str(syn.stack), poses=str(syn.poses), ctf=str(syn.ctf))
    model = ModelConfig(zdim=1, enc_dim=16, enc_layers=1, dec_dim=16, dec_layers=1)
    return dataclasses.replace(TrainConfig(model=model, data=data, num_epochs=1, lr=1e-3), **changes)


def test_a_run_stores_its_precision_and_a_resume_keeps_it(tmp_path, monkeypatch):
    syn = two_blob_dataset(tmp_path / "data", 16, 24, seed=2)
    monkeypatch.setattr(pc, "time_steps", lambda module, batch, name, device: {"fp32": 1.0, "bf16": 0.5}[name])
    loop.fit(_config(syn), tmp_path / "run")
    run = RunDir(tmp_path / "run")
    config = read_run_config(run)
    assert config.amp is None and config.precision == "bf16" and config.batch_size == 8
    assert "precision: bf16 (measured per step" in run.log_path.read_text()
    assert run.load_checkpoint(1)["config"]["precision"] == "bf16"
    # the machine now measures fp32 as faster: the resumed run keeps the precision it started with
    monkeypatch.setattr(pc, "time_steps", lambda *a: pytest.fail("a resumed run measured"))
    loop.fit(None, resume_from=tmp_path / "run", changes={"num_epochs": 2})
    assert read_run_config(run).precision == "bf16"
    # --no-amp given again changes it
    loop.fit(None, resume_from=tmp_path / "run", changes={"num_epochs": 3, "amp": False})
    assert read_run_config(run).precision == "fp32" and read_run_config(run).amp is False
    assert "precision: fp32 (forced by --no-amp)" in run.log_path.read_text()


def test_a_run_written_before_precision_existed_resumes_with_its_rule(tmp_path, monkeypatch):
    syn = two_blob_dataset(tmp_path / "data", 16, 24, seed=3)
    loop.fit(_config(syn, amp=True), tmp_path / "run")
    run = RunDir(tmp_path / "run")
    state = run.load_checkpoint(1)
    del state["config"]["precision"]  # as older versions wrote it
    torch.save(state, run.weights_path(1))
    monkeypatch.setattr(precision_module, "cpu_supports_bf16", lambda: False)
    monkeypatch.setattr(pc, "time_steps", lambda *a: pytest.fail("measured"))
    loop.fit(None, resume_from=tmp_path / "run", changes={"num_epochs": 2})
    assert read_run_config(run).precision == "fp32"  # amp: true on a CPU without native bf16 trained in fp32
