"""Options declared once on the config fields: the Python API refuses what the CLI refuses (same words), cryoDRGN
spellings keep working, yaml values of the wrong type are one clear line, and every command's --help builds."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest

from cryoscape.cli.main import build_parser, main
from cryoscape.cli.options import add_config_options, add_run, chosen_epoch, config_from_args
from cryoscape.configio import option
from cryoscape.errors import InputError
from cryoscape.models.config import ModelConfig
from cryoscape.simulate.config import SimulationConfig
from cryoscape.training.config import DataConfig, TrainConfig

# (CLI options of train-vae, the same values through the Python API, the message both give)
REFUSALS = {
    "batch-size-0": (["-b", "0"], lambda: TrainConfig(batch_size=0), "batch_size must be at least 1, got 0"),
    "lr-0": (["--lr", "0"], lambda: TrainConfig(lr=0.0), "lr must be greater than 0, got 0.0"),
    "lr-negative": (["--lr=-1e-4"], lambda: TrainConfig(lr=-1e-4), "lr must be greater than 0, got -0.0001"),
    "epochs-0": (["-n", "0"], lambda: TrainConfig(num_epochs=0), "num_epochs must be at least 1, got 0"),
    "checkpoint-0": (["--checkpoint-every", "0"], lambda: TrainConfig(checkpoint_every=0),
                     "checkpoint_every must be at least 1, got 0"),
    "log-interval-0": (["--log-interval", "0"], lambda: TrainConfig(log_interval=0),
                       "log_interval must be at least 1, got 0"),
    "weight-decay-neg": (["--wd", "-1"], lambda: TrainConfig(weight_decay=-1.0),
                         "weight_decay must be at least 0, got -1.0"),
    "beta-schedule": (["--beta-schedule", "linear:x"], lambda: TrainConfig(beta_schedule="linear:x"),
                      "beta_schedule period must be a number of epochs, got 'x'"),
    "freq-march-neg": (["--freq-march-epochs", "-1"], lambda: TrainConfig(freq_march_epochs=-1.0),
                       "freq_march_epochs must be at least 0, got -1.0"),
    "zdim-0-vae": (["--zdim", "0"], lambda: TrainConfig(model=ModelConfig(zdim=0)).check_kind("vae"),
                   "zdim must be at least 1 for a VAE (train-vae), got 0"),
    "zdim-negative": (["--zdim", "-1"], lambda: ModelConfig(zdim=-1), "zdim must be at least 0, got -1"),
    "enc-dim-0": (["--enc-dim", "0"], lambda: ModelConfig(enc_dim=0), "enc_dim must be at least 1, got 0"),
    "dec-dim-0": (["--dim", "0"], lambda: ModelConfig(dec_dim=0), "dec_dim must be at least 1, got 0"),
    "pe-dim-0": (["--pe-dim", "0"], lambda: ModelConfig(pe_dim=0), "pe_dim must be at least 1, got 0"),
    "feat-sigma-0": (["--feat-sigma", "0"], lambda: ModelConfig(feat_sigma=0.0),
                     "feat_sigma must be greater than 0, got 0.0"),
    "seam-band-neg": (["--seam-band-px", "-1"], lambda: ModelConfig(seam_band_px=-1.0),
                      "seam_band_px must be at least 0, got -1.0"),
    "chunk-size-0": (["--chunk-size", "0"], lambda: DataConfig(chunk_size=0), "chunk_size must be at least 1, got 0"),
    "num-workers-neg": (["--num-workers", "-1"], lambda: DataConfig(num_workers=-1),
                        "num_workers must be at least 0, got -1"),
    "window-r": (["--window-r", "2"], lambda: DataConfig(window_r=2.0), "window_r must be between 0 and 1, got 2.0"),
    "memory-0": (["--max-memory-gb", "0"], lambda: DataConfig(max_memory_gb=0.0),
                 "max_memory_gb must be greater than 0, got 0.0"),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_the_python_api_refuses_what_the_cli_refuses_in_the_same_words(name, tmp_path, capsys):
    cli_options, api_call, message = REFUSALS[name]
    with pytest.raises(InputError) as api_error:
        api_call()
    assert str(api_error.value).startswith(message), str(api_error.value)
    code = main(["train-vae", str(tmp_path / "p.star"), "-o", str(tmp_path / "run"), *cli_options])
    err = capsys.readouterr().err
    assert code == 2 and err == f"error: {api_error.value}\n", err
    assert not (tmp_path / "run").exists()


def test_train_nn_refuses_the_same_values(tmp_path, capsys):
    assert main(["train-nn", str(tmp_path / "p.star"), "-o", str(tmp_path / "r"), "-b", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: batch_size must be at least 1, got 0")


def test_choices_come_from_the_library_constants():
    from cryoscape.models.config import ACTIVATIONS, DOMAINS, ENCODER_INPUTS, FIRST_LAYER_INITS, PE_TYPES
    from cryoscape.training.config import DEVICES

    text = build_parser()._subparsers._group_actions[0].choices["train-vae"].format_help()
    for constant in (ACTIVATIONS, DOMAINS, ENCODER_INPUTS, FIRST_LAYER_INITS, PE_TYPES, DEVICES):
        assert "{" + ",".join(constant) + "}" in text
    with pytest.raises(InputError, match="domain must be one of hartley, hartley_full, fourier, got 'x'"):
        ModelConfig(domain="x")
    with pytest.raises(InputError, match="device must be one of auto, cpu, cuda, got 'tpu'"):
        TrainConfig(device="tpu")


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_cryodrgn_spellings_still_parse():
    from cryoscape.cli.train_vae import config_from_args as train_config

    args = _parse("train-vae", "p.star", "-o", "r", "--dim", "64", "--layers", "2", "--enc-mask", "5",
                  "--use-real", "--uninvert-data", "--checkpoint", "2", "--wd", "0.1", "--load", "old/")
    assert (args.dec_dim, args.dec_layers, args.enc_mask_radius_px, args.encoder_input) == (64, 2, 5.0, "real")
    assert (args.invert_data, args.checkpoint_every, args.weight_decay, args.resume) == (False, 2, 0.1, "old/")
    config = train_config(args, heterogeneous=True)
    assert (config.model.dec_dim, config.checkpoint_every, config.weight_decay) == (64, 2, 0.1)
    same = _parse("train-vae", "p.star", "-o", "r", "--dec-dim", "64", "--dec-layers", "2",
                  "--enc-mask-radius-px", "5", "--encoder-input", "real", "--checkpoint-every", "2",
                  "--weight-decay", "0.1", "--resume", "old/")
    assert vars(same) == {**vars(args), "invert_data": None}  # --uninvert-data gives False: the default, said
    args = _parse("train-vae", "p.star", "-o", "r", "--invert-data", "--no-window", "--lazy", "--no-amp")
    assert (args.outdir, args.invert_data, args.window, args.lazy, args.amp) == ("r", True, False, True, False)
    args = _parse("eval-vol", "run", "3", "-o", "v.mrc", "--Apix", "1.5", "-b", "4", "-d", "16", "--flip", "-z", "0")
    assert (chosen_epoch(args), args.apix, args.batch_size, args.downsample, args.flip) == (3, 1.5, 4, 16, True)
    assert _parse("eval-vol", "run", "-o", "v.mrc", "--apix", "2", "-z", "0").apix == 2.0
    assert _parse("backproject", "p.star", "-o", "o", "--pad", "2", "--chunk", "64").pad_factor == 2
    assert _parse("downsample", "p.star", "-D", "16", "-o", "x.mrcs", "-b", "7").chunk == 7


def test_options_not_given_are_none_so_a_resume_sees_only_what_was_given():
    args = _parse("train-vae", "--resume", "run/", "--lr", "1e-3")
    from cryoscape.cli.train_vae import _given

    given = {**_given(TrainConfig, args), **_given(DataConfig, args), **_given(ModelConfig, args)}
    assert given == {"lr": 1e-3}
    assert "default 0.0003" in build_parser()._subparsers._group_actions[0].choices["train-vae"].format_help()
    assert "default 0.0001" in build_parser()._subparsers._group_actions[0].choices["train-nn"].format_help()


@dataclasses.dataclass(frozen=True)
class _Demo:
    size: int = option(3, flags=("-s",), help="size (default %(default)s)")
    on: bool = option(True, negative="--off", help="turn off")
    pair: tuple[float, float] = option((1.0, 2.0), help="two numbers")
    flag: bool | None = option(None, negative="--no-flag", help="flag")
    hidden: int = 0


def test_add_config_options_and_config_from_args():
    parser = argparse.ArgumentParser()
    names = add_config_options(parser, _Demo)
    assert names == ["size", "on", "pair", "flag"]
    assert config_from_args(_Demo, parser.parse_args([]), names) == _Demo()
    got = config_from_args(_Demo, parser.parse_args(["-s", "5", "--off", "--pair", "3", "4", "--no-flag"]), names)
    assert got == _Demo(size=5, on=False, pair=(3.0, 4.0), flag=False)
    with pytest.raises(SystemExit):
        parser.parse_args(["--pair", "1"])  # a fixed-length tuple takes exactly its number of values
    unset = argparse.ArgumentParser()
    add_config_options(unset, _Demo, only=("pair", "size"), unset_default=True)
    assert vars(unset.parse_args([])) == {"pair": None, "size": None}
    assert "size (default 3)" in unset.format_help()
    assert unset.format_help().index("--pair") < unset.format_help().index("--size")  # the order of only


def test_positional_epoch_helpers_live_in_options():
    parser = argparse.ArgumentParser()
    add_run(parser)
    assert chosen_epoch(parser.parse_args(["run", "4"])) == 4
    assert chosen_epoch(parser.parse_args(["run", "--epoch", "5"])) == 5
    with pytest.raises(InputError, match="two epochs given"):
        chosen_epoch(parser.parse_args(["run", "4", "--epoch", "5"]))


# --- yaml values of the wrong type: one line naming the file, the key, the value and the expected type ---------
def test_simulate_config_value_of_the_wrong_type_is_one_clear_line(tmp_path, capsys):
    config = tmp_path / "sim.yaml"
    config.write_text("source: hinge\nn_particles: many\n")
    assert main(["simulate", "--config", str(config), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {config}: setting n_particles: 'many' is not an integer (give n_particles an "
                   "integer)\n")
    assert not (tmp_path / "out").exists()
    config.write_text("hinge_angles_deg: [0, 60, 90]\n")
    with pytest.raises(InputError, match=r"sim\.yaml: setting hinge_angles_deg: \[0, 60, 90\] is not a list of 2"):
        SimulationConfig.load_yaml(config)


def test_run_config_value_of_the_wrong_type_names_the_file(tmp_path):
    from cryoscape.training.config import train_config_from_dict

    with pytest.raises(InputError, match=r"^c\.yaml: setting model\.zdim: 'x' is not an integer"):
        train_config_from_dict({"model": {"zdim": "x"}}, path="c.yaml")
    with pytest.raises(InputError, match=r"^c\.yaml: batch_size must be at least 1, got 0"):
        train_config_from_dict({"batch_size": 0}, path="c.yaml")


# --- help ----------------------------------------------------------------------------------------------------
def test_every_commands_help_builds_and_lists_its_options():
    sub = build_parser()._subparsers._group_actions[0].choices
    for name, parser in sub.items():
        text = parser.format_help()
        assert text.startswith("usage: cryoscape ") and "--no-progress" in text, name
    text = sub["train-vae"].format_help()
    # the option list of train-vae before the options moved onto the config fields
    before = ("--outdir --resume --load --overwrite --poses --ctf --ind --datadir --amplitude-contrast "
              "--allow-overfocus --num-epochs --batch-size --lr --wd --weight-decay --beta --beta-schedule "
              "--loss-radius-px --freq-march-epochs --freq-march-start-px --amp --no-amp --seed --checkpoint-every "
              "--checkpoint --log-interval --volume-radius-px --device --invert-data --uninvert-data --window "
              "--no-window --window-r --data-std-windowed --no-data-std-windowed --lazy --max-memory-gb "
              "--chunk-size --num-workers --zdim --enc-dim --enc-layers --encoder-input --use-real "
              "--enc-mask-radius-px --enc-mask --dec-dim --dim --dec-layers --layers --pe-type --pe-dim "
              "--feat-sigma --domain --seam-band-px --first-layer-init --activation").split()
    listed = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text))
    assert set(before) <= listed, set(before) - listed
    assert "differences from cryoDRGN" in text and "-n NUM_EPOCHS" in text and "-b BATCH_SIZE" in text
