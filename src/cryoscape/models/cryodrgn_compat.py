"""Import a trained cryoDRGN model (config + state dict) as an equivalent cryoscape model.

cryoDRGN (checked against the public 3.x/4.x sources) works on an odd lattice of D + 1 points per axis with
coordinates ``linspace(−0.5, 0.5, D + 1)`` — the same cycles/pixel as ours for box D, plus a duplicated
+Nyquist row — and:

- gaussian encoding: phase ``(D/2)·(k · ω_m)`` for the rows ω_m of ``rand_freqs`` (3n, 3); features
  ``[sin(all), cos(all)]`` then z. Geometric encodings: per axis ``[sin(k_a f_0..f_{n−1}), cos(...)]``
  (axis-major, sin/cos interleaved per axis), the frequencies of :mod:`cryoscape.models.positional`.
- ``ResidLinearMLP``: ``[Linear|ResidLinear](in, hidden), act, nlayers × (ResidLinear(hidden), act),
  [Linear|ResidLinear](hidden, out)`` where ResidLinear(x) = W x + b + x (used when the sizes are equal).
- Hartley decoder (``domain: hartley``): one output H(k), evaluated on the full cube for a volume — our
  ``domain: hartley_full``; the weights are used as they are.
- Fourier decoder (``domain: fourier``): outputs (Re, Im) on the half-space kz < 0 (kz > 0 → conjugate), and
  on the kz = 0 plane of a volume evaluates ky < 0 or (ky = 0, kx ≤ 0) — exactly our canonical half-space, so
  the weights are used as they are.
- Encoder input: the symmetrised Hartley image on the (D+1)² lattice divided by ``norm[1]`` (after subtracting
  ``norm[0]``), restricted to the disc of radius ``enc_mask`` without DC (``ignore_DC``). The +Nyquist
  row/column is a copy of −Nyquist, so its weights are added to those of −Nyquist; the DC weight is 0.
- Volumes: Hartley values × norm[1] + norm[0], then the inverse Hartley transform of the D³ part.

The imported model works in cryoscape's units with ``data_std = norm[1]`` (inputs and outputs are Hartley
values divided by data_std; the norm[0] offset is folded into the biases), so ``model.decoder.eval_volume(z,
scale=norm[1], radius_px=...)`` reproduces cryoDRGN's ``eval_vol`` (use ``radius_px=math.inf`` for Hartley
models — cryoDRGN fills the whole cube — and the default Nyquist sphere for Fourier models). Unsupported
settings raise :class:`~cryoscape.errors.InputError` listing all of them; a tilt-series model is recognised by
its encoder (``encode_mode: tilt``) or its tilt data (``dataset_args.ntilts``), not by the
``model_args.tilt_params`` that cryoDRGN 3.x/4.x write into every ``train_vae`` config. A config value of the
wrong type (e.g. ``zdim: x``) raises InputError naming the key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from cryoscape.errors import InputError
from cryoscape.models.config import ModelConfig
from cryoscape.models.encoders import encoder_mask_indices
from cryoscape.models.vae import HetVAE, HomogeneousModel, build_model

_PE_SUPPORTED = ("gaussian", "geom_ft", "geom_lowf", "none")
_ACTIVATIONS = ("relu", "leaky_relu")


@dataclass(frozen=True)
class CryoDRGNImport:
    """Result of :func:`import_cryodrgn`.

    Attributes
    ----------
    model : HetVAE or HomogeneousModel
        The equivalent cryoscape model (eval mode).
    config : ModelConfig
        Its configuration (``domain`` is ``hartley_full`` for cryoDRGN's Hartley-domain models).
    box_size : int
        Box D of the training images (cryoDRGN's lattice D minus 1).
    data_std : float
        cryoDRGN's ``norm[1]``: inputs and decoded values are Hartley values divided by this.
    invert_data, window : bool
        cryoDRGN's image preparation (multiply by −1; soft real-space window).
    window_r : float
        Inner radius of the window (fraction of the half box).
    volume_radius_px : float
        Radius to pass to ``eval_volume`` to reproduce cryoDRGN's maps (inf for Hartley models, D/2 for
        Fourier).
    """

    model: HetVAE | HomogeneousModel
    config: ModelConfig
    box_size: int
    data_std: float
    invert_data: bool
    window: bool
    window_r: float
    volume_radius_px: float


def cryodrgn_checkpoint_safe_globals() -> list[Any]:
    """Globals to allow in ``torch.load(path, weights_only=True)`` of a cryoDRGN ``weights.pkl``.

    cryoDRGN checkpoints hold numpy arrays (e.g. ``search_pose``); with numpy ≥ 2 their pickled name
    ``numpy.core.multiarray._reconstruct`` must be mapped explicitly. Use as
    ``with torch.serialization.safe_globals(cryodrgn_checkpoint_safe_globals()): torch.load(...)``.
    """
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    allowed: list[Any] = [(_reconstruct, "numpy.core.multiarray._reconstruct"), _reconstruct, np.ndarray,
                          np.dtype]
    allowed += [type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "uint8",
                                            "bool", "int8", "int16", "uint16", "uint32", "uint64")]
    return allowed


_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a name"}


def _section(cfg: Mapping[str, Any], name: str, source: str | None, required: bool = True) -> Mapping[str, Any]:
    """``cfg[name]`` as a mapping (an empty one when absent and not required); InputError otherwise."""
    value = cfg.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(f"not a cryoDRGN config ({name} is missing or not a mapping)", path=source,
                         fix="give the config.yaml of a cryoDRGN train_vae or train_nn run")
    return value


def _get(section: Mapping[str, Any], key: str, default: Any, kind: type, where: str, source: str | None) -> Any:
    """``section[key]`` checked to be of ``kind`` (int, float, bool or str); ``default`` when absent or null.

    Raises
    ------
    InputError
        The value has another type (e.g. ``zdim: x``), naming the key and the value.
    """
    value = section.get(key)
    if value is None:
        return default
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is int and isinstance(value, float) and not isinstance(value, bool) and value.is_integer():
        value, ok = int(value), True
    elif kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise InputError(f"{where}.{key} is {value!r}, not {_KINDS[kind]}", path=source,
                         fix="restore the value cryoDRGN wrote into config.yaml")
    return value


def _norm(dataset_args: Mapping[str, Any], source: str | None) -> tuple[float, float]:
    """cryoDRGN's ``dataset_args.norm`` (mean, std) of the Hartley values; (0, 1) when absent."""
    norm = dataset_args.get("norm")
    if norm is None:
        return 0.0, 1.0
    if (not isinstance(norm, (list, tuple)) or len(norm) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in norm)
            or not float(norm[1]) > 0):
        raise InputError(f"dataset_args.norm is {norm!r}, not [mean, std] with std > 0", path=source,
                         fix="restore the value cryoDRGN wrote into config.yaml")
    return float(norm[0]), float(norm[1])


def _tilt_settings(cfg: Mapping[str, Any], model_args: Mapping[str, Any], dataset_args: Mapping[str, Any],
                   encode_mode: str) -> list[str]:
    """The settings that make a cryoDRGN model a tilt-series (or tilt-pair) model, described.

    cryoDRGN 3.x/4.x write ``model_args.tilt_params`` (its defaults) into every ``train_vae`` config; a model
    is a tilt-series model only when its encoder encodes tilt series (``encode_mode: tilt``, whose data add
    ``dataset_args.ntilts``). Older versions marked tilt-pair training with a ``tilt`` entry.
    """
    found = []
    if encode_mode == "tilt":
        found.append("encode_mode='tilt' (tilt-series encoder)")
    elif dataset_args.get("ntilts") is not None:
        found.append(f"dataset_args.ntilts={dataset_args['ntilts']!r} (tilt-series particles)")
    for where, section in (("model_args", model_args), ("dataset_args", dataset_args), ("", cfg)):
        if section.get("tilt"):
            found.append(f"{where + '.' if where else ''}tilt={section['tilt']!r} (tilt-pair encoder)")
    return found


def cryodrgn_model_config(cfg: Mapping[str, Any], source: str | None = None) -> tuple[ModelConfig, int]:
    """The cryoscape ModelConfig and box size equivalent to a cryoDRGN ``config.yaml`` mapping.

    Raises
    ------
    InputError
        A value of the wrong type (naming the key), or listing every unsupported setting.
    """
    problems: list[str] = []
    if not isinstance(cfg, Mapping):
        raise InputError("not a cryoDRGN config (not a mapping)", path=source,
                         fix="give the config.yaml of a cryoDRGN train_vae or train_nn run")
    model_args = _section(cfg, "model_args", source)
    lattice_args = _section(cfg, "lattice_args", source)
    dataset_args = _section(cfg, "dataset_args", source, required=False)
    lattice_d = _get(lattice_args, "D", 0, int, "lattice_args", source)
    extent = _get(lattice_args, "extent", 0.5, float, "lattice_args", source)
    _get(lattice_args, "ignore_DC", True, bool, "lattice_args", source)  # read by the encoder import
    if lattice_d < 5 or lattice_d % 2 == 0:
        problems.append(f"lattice D={lattice_d} (expected an odd lattice, box + 1)")
    if not math.isclose(extent, 0.5):
        problems.append(f"lattice extent={extent} (only 0.5)")
    box = lattice_d - 1
    zdim = _get(model_args, "zdim", 0, int, "model_args", source)
    heterogeneous = "qlayers" in model_args or zdim > 0
    pe_type = _get(model_args, "pe_type", "geom_lowf", str, "model_args", source)
    domain = _get(model_args, "domain", "fourier", str, "model_args", source)
    activation = _get(model_args, "activation", "relu", str, "model_args", source)
    feat_sigma = _get(model_args, "feat_sigma", 0.5, float, "model_args", source)
    pe_dim = _get(model_args, "pe_dim", None, int, "model_args", source)
    if pe_type not in _PE_SUPPORTED:
        problems.append(f"pe_type={pe_type!r} (supported: {', '.join(_PE_SUPPORTED)})")
    if domain not in ("hartley", "fourier"):
        problems.append(f"domain={domain!r}")
    if domain == "fourier" and pe_type == "none":
        problems.append("domain=fourier with pe_type=none (its volumes are not Hermitian on kz = 0)")
    norm_mean, _ = _norm(dataset_args, source)
    if domain == "fourier" and norm_mean != 0.0:
        problems.append(f"domain=fourier with norm mean {norm_mean} (added outside the sphere by cryoDRGN)")
    if activation not in _ACTIVATIONS:
        problems.append(f"activation={activation!r} (supported: relu, leaky_relu)")
    if heterogeneous:
        encode_mode = _get(model_args, "encode_mode", "resid", str, "model_args", source)
        tilt = _tilt_settings(cfg, model_args, dataset_args, encode_mode)
        problems.extend(tilt)
        if encode_mode not in ("resid", "mlp", "tilt"):
            problems.append(f"encode_mode={encode_mode!r} (supported: resid, mlp)")
        enc_layers = _get(model_args, "qlayers", 3, int, "model_args", source)
        enc_dim = _get(model_args, "qdim", 256, int, "model_args", source)
        dec_layers = _get(model_args, "players", 3, int, "model_args", source)
        dec_dim = _get(model_args, "pdim", 256, int, "model_args", source)
        enc_mask = _get(model_args, "enc_mask", -1, int, "model_args", source)
        if enc_mask != -1 and not 0 < enc_mask <= box // 2:
            problems.append(f"enc_mask={enc_mask}")
        enc_radius = float(box) if enc_mask == -1 else float(enc_mask)
    else:
        problems.extend(_tilt_settings(cfg, model_args, dataset_args, ""))
        enc_layers, enc_dim = 1, 1
        dec_layers = _get(model_args, "layers", _get(model_args, "players", 3, int, "model_args", source), int,
                          "model_args", source)
        dec_dim = _get(model_args, "dim", _get(model_args, "pdim", 256, int, "model_args", source), int,
                       "model_args", source)
        enc_radius = None
    if problems:
        raise InputError("cannot reproduce this cryoDRGN model exactly; unsupported: " + "; ".join(problems),
                         path=source, fix="retrain with supported settings or with cryoscape")
    config = ModelConfig(
        zdim=zdim if heterogeneous else 0, enc_dim=enc_dim, enc_layers=enc_layers,
        dec_dim=dec_dim, dec_layers=dec_layers,
        pe_type=pe_type, pe_dim=pe_dim, feat_sigma=feat_sigma,
        domain="hartley_full" if domain == "hartley" else domain, activation=activation,
        encoder_input="hartley", enc_mask_radius_px=enc_radius, seam_band_px=0.0)
    return config, box


def _copy(target: torch.Tensor, value: torch.Tensor, what: str, source: str | None) -> None:
    """``target.copy_(value)``, or an InputError naming the layer when the shapes differ (config ≠ weights)."""
    if tuple(target.shape) != tuple(value.shape):
        raise InputError(
            f"weights do not match the config: the {what} is {tuple(value.shape)} in the weights but "
            f"{tuple(target.shape)} for the config's sizes",
            path=source,
            fix="give the config.yaml written by the same run as the weights",
        )
    target.copy_(value)


def _mlp_layers(state: Mapping[str, torch.Tensor], prefix: str) -> list[tuple[torch.Tensor, torch.Tensor,
bool]]:
    """Layers (weight (out, in), bias (out,), residual) of a cryoDRGN ResidLinearMLP/MLP at ``prefix +
    'main.'``."""
    pattern = re.compile(re.escape(prefix) + r"main\.(\d+)\.(linear\.)?weight$")
    found: dict[int, tuple[str, bool]] = {}
    for key in state:
        m = pattern.match(key)
        if m:
            found[int(m.group(1))] = (key, m.group(2) is not None)
    layers = []
    for index in sorted(found):
        key, residual = found[index]
        weight = state[key].detach().to(torch.float64)
        bias = state[key[: -len("weight")] + "bias"].detach().to(torch.float64)
        layers.append((weight, bias, residual))
    return layers


def _with_identity(weight: torch.Tensor, residual: bool) -> torch.Tensor:
    """Fold a ResidLinear's ``+ x`` into the weight (only when it is square)."""
    if not residual:
        return weight
    return weight + torch.eye(weight.shape[0], weight.shape[1], dtype=weight.dtype)


def _hidden_weight(weight: torch.Tensor, residual: bool) -> torch.Tensor:
    """Weight W' with act(W' h + b + h) equal to cryoDRGN's layer (residual: W; plain MLP: W − I)."""
    return weight if residual else weight - torch.eye(weight.shape[0], dtype=weight.dtype)


def _feature_permutation(pe_type: str, n_freq_cols: int) -> torch.Tensor:
    """For each of our PE feature columns, the index of cryoDRGN's column holding the same feature."""
    if pe_type in ("gaussian", "none"):
        return torch.arange(2 * n_freq_cols if pe_type == "gaussian" else 3)
    n = n_freq_cols // 3  # per axis
    ours = []
    for kind in (0, 1):  # sin, cos
        for axis in range(3):
            for i in range(n):
                ours.append(axis * 2 * n + kind * n + i)
    return torch.tensor(ours)


def import_cryodrgn(cfg: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor],
                    source: str | None = None, config_source: str | None = None) -> CryoDRGNImport:
    """Build the cryoscape model equivalent to a cryoDRGN model.

    Parameters
    ----------
    cfg : mapping
        cryoDRGN ``config.yaml`` (``model_args``, ``lattice_args``, ``dataset_args``).
    state_dict : mapping of str → torch.Tensor
        ``checkpoint["model_state_dict"]`` of cryoDRGN's ``weights.pkl`` (or the checkpoint itself).
    source : str, optional
        File name used in error messages (the weights).
    config_source : str, optional
        File name used in error messages about the config's values (default ``source``).

    Returns
    -------
    CryoDRGNImport
    """
    if "model_state_dict" in state_dict:
        state_dict = state_dict["model_state_dict"]  # type: ignore[assignment]
    cfg_source = source if config_source is None else config_source
    config, box = cryodrgn_model_config(cfg, cfg_source)
    dataset_args = _section(cfg, "dataset_args", cfg_source, required=False)
    norm_mean, norm_std = _norm(dataset_args, cfg_source)
    offset = norm_mean / norm_std  # cryoDRGN normalised value = ours − offset

    hetero = config.zdim > 0
    dec_prefix = "decoder." if hetero else ""
    if f"{dec_prefix}decoder.main.0.weight" in state_dict or f"{dec_prefix}decoder.main.0.linear.weight" in \
            state_dict:
        dec_mlp_prefix = f"{dec_prefix}decoder."
    else:
        dec_mlp_prefix = dec_prefix
    dec_layers = _mlp_layers(state_dict, dec_mlp_prefix)
    problems = []
    if len(dec_layers) != config.dec_layers + 2:
        problems.append(f"decoder has {len(dec_layers)} layers, config says {config.dec_layers} + 2")
    enc_layers = _mlp_layers(state_dict, "encoder.") if hetero else []
    if hetero and len(enc_layers) != config.enc_layers + 2:
        problems.append(f"encoder has {len(enc_layers)} layers, config says {config.enc_layers} + 2")
    has_rand_freqs = any(key.endswith("rand_freqs") for key in state_dict)
    if has_rand_freqs and config.pe_type != "gaussian":
        problems.append(f"the weights hold a gaussian encoding (rand_freqs), the config says pe_type={config.pe_type}")
    if problems:
        raise InputError("weights do not match the config: " + "; ".join(problems), path=source,
                         fix="give the config.yaml written by the same run")

    model = build_model(config, box)
    decoder = model.decoder
    n_pe = decoder.pe.out_dim
    with torch.no_grad():
        # ---- positional encoding
        if config.pe_type == "gaussian":
            key = f"{dec_prefix}rand_freqs"
            if key not in state_dict:
                raise InputError(f"gaussian encoding but no {key} in the weights", path=source)
            rand = state_dict[key].detach().to(torch.float64)
            _copy(decoder.pe.freqs, (rand * (box // 2)).T.to(torch.float32), "rand_freqs", source)
        # ---- decoder
        w0, b0, res0 = dec_layers[0]
        w0 = _with_identity(w0, res0)
        perm = _feature_permutation(config.pe_type, decoder.pe.freqs.shape[1])
        if w0.shape[1] != n_pe + config.zdim:
            raise InputError(f"decoder input width {w0.shape[1]} != {n_pe} features + zdim {config.zdim}",
                             path=source)
        w_pe, w_z = w0[:, :n_pe][:, perm], w0[:, n_pe:]
        hidden = [(_hidden_weight(w, r), b) for w, b, r in dec_layers[1:-1]]
        w_out, b_out, res_out = dec_layers[-1]
        w_out = _with_identity(w_out, res_out)
        b_out = b_out.clone()
        # hartley_full: adds the offset to H; fourier: to Re, hence to both Re − Im and Re + Im
        b_out[0] += offset
        _copy(decoder.input_coords.weight, w_pe, "decoder first layer (positional features)", source)
        _copy(decoder.input_coords.bias, b0, "decoder first-layer bias", source)
        if hetero:
            _copy(decoder.input_z.weight, w_z, "decoder first layer (z)", source)
        for layer, (w, b) in zip(decoder.hidden, hidden, strict=True):
            _copy(layer.weight, w, "decoder hidden layer", source)
            _copy(layer.bias, b, "decoder hidden-layer bias", source)
        _copy(decoder.output.weight, w_out, "decoder output layer", source)
        _copy(decoder.output.bias, b_out, "decoder output bias", source)
        # ---- encoder
        if hetero:
            _load_encoder(model, enc_layers, cfg, box, offset, source)
    model.eval()
    return CryoDRGNImport(
        model=model, config=config, box_size=box, data_std=norm_std,
        invert_data=_get(dataset_args, "invert_data", True, bool, "dataset_args", cfg_source),
        window=_get(dataset_args, "window", True, bool, "dataset_args", cfg_source),
        window_r=_get(dataset_args, "window_r", 0.85, float, "dataset_args", cfg_source),
        volume_radius_px=math.inf if config.domain == "hartley_full" else box / 2)


def _load_encoder(model: HetVAE, layers: list[tuple[torch.Tensor, torch.Tensor, bool]], cfg: Mapping[str,
Any],
                  box: int, offset: float, source: str | None) -> None:
    """Copy cryoDRGN's encoder weights, remapping the (D+1)² lattice input columns onto our masked D²
    input."""
    lattice_d = box + 1
    enc_mask = _get(cfg["model_args"], "enc_mask", -1, int, "model_args", source)
    ignore_dc = _get(cfg["lattice_args"], "ignore_DC", True, bool, "lattice_args", source)
    # cryoDRGN input columns: lattice points (y, x), row-major, inside the disc, DC removed if ignore_DC
    j = torch.arange(lattice_d) - box // 2
    jy, jx = torch.meshgrid(j, j, indexing="ij")
    jy, jx = jy.reshape(-1), jx.reshape(-1)
    if enc_mask == -1:
        keep = torch.ones_like(jx, dtype=torch.bool)
    else:
        # cryoDRGN: coords² ≤ (R / (D//2) · extent)² with coords = j / box, i.e. j² ≤ R²
        keep = (jx.double() ** 2 + jy.double() ** 2) <= enc_mask**2 + 1e-9
        if ignore_dc:
            keep &= ~((jx == 0) & (jy == 0))
    cols_y, cols_x = jy[keep], jx[keep]
    w0, b0, res0 = layers[0]
    if w0.shape[1] != cols_x.shape[0]:
        raise InputError(f"encoder input width {w0.shape[1]} != {cols_x.shape[0]} lattice points of enc_mask="
                         f"{enc_mask}", path=source)
    w0 = _with_identity(w0, res0)
    # +Nyquist is a copy of -Nyquist (symmetrised lattice): wrap onto our grid
    our_flat = ((cols_y + box // 2) % box) * box + (cols_x + box // 2) % box
    ours = encoder_mask_indices(box, model.config)
    position = torch.full((box * box,), -1, dtype=torch.long)
    position[ours] = torch.arange(ours.shape[0])
    target = position[our_flat]
    if (target < 0).any():
        raise InputError("cryoDRGN encoder input points fall outside the cryoscape encoder disc", path=source)
    w_in = torch.zeros((w0.shape[0], ours.shape[0]), dtype=torch.float64)
    w_in.index_add_(1, target, w0)
    # cryoDRGN input = ours − offset at every input point
    b_in = b0 - offset * w0.sum(dim=1)
    enc = model.encoder
    _copy(enc.input.weight, w_in, "encoder input layer", source)
    _copy(enc.input.bias, b_in, "encoder input bias", source)
    for layer, (w, b, r) in zip(enc.hidden, layers[1:-1], strict=True):
        _copy(layer.weight, _hidden_weight(w, r), "encoder hidden layer", source)
        _copy(layer.bias, b, "encoder hidden-layer bias", source)
    w_out, b_out, res_out = layers[-1]
    _copy(enc.output.weight, _with_identity(w_out, res_out), "encoder output layer", source)
    _copy(enc.output.bias, b_out, "encoder output bias", source)
