"""Architecture of the neural models (flag = field = yaml key).

:class:`ModelConfig` holds every choice that determines the shapes and the function of the encoder and
decoder. Field names equal the command-line flags with dashes replaced by underscores (``--enc-dim`` ↔
``enc_dim``) and the yaml keys of a run's ``config.yaml``; where the concept is the same as in cryoDRGN the
name is cryoDRGN's. The box size is not part of the config (it comes from the data) and is passed when a model
is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryoscape.configio import dataclass_from_mapping
from cryoscape.errors import InputError

#: Positional encodings of the decoder's input coordinates (see :mod:`cryoscape.models.positional`).
PE_TYPES = ("gaussian", "geom_ft", "geom_lowf", "none")
#: What the decoder network outputs: Hartley pairs (H(k), H(-k)) on the canonical half-space, one Hartley
#: value H(k) anywhere (evaluated at k and -k), or (Re F(k), Im F(k)) on the canonical half-space.
DOMAINS = ("hartley", "hartley_full", "fourier")
#: Activation functions of the residual MLPs.
ACTIVATIONS = ("relu", "leaky_relu", "gelu", "silu", "tanh")
#: What the encoder sees: masked Hartley transform of the image, or the masked real-space pixels.
ENCODER_INPUTS = ("hartley", "real")
#: ``seam_band_px`` of configs that predate the field (their decoders were trained with the hard switch).
LEGACY_SEAM_BAND_PX = 0.0
#: How the decoder's first layer (``input_coords`` over the encoded coordinates, ``input_z`` over z) is
#: initialised (see :meth:`ModelConfig.resolved_first_layer_init`).
FIRST_LAYER_INITS = ("auto", "joint", "separate")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the encoder and decoder.

    Attributes
    ----------
    zdim : int
        Latent dimension; 0 builds a homogeneous model (decoder only, ``train-nn``).
    enc_dim, enc_layers : int
        Width and number of hidden residual layers of the encoder MLP (cryoDRGN ``--enc-dim``,
        ``--enc-layers``): Linear(in, enc_dim), ``enc_layers`` residual layers, Linear(enc_dim, 2·zdim).
    dec_dim, dec_layers : int
        Width and number of hidden residual layers of the decoder MLP (same structure); its output layer gives
        2 values per point for ``hartley`` (H(k), H(-k)) and ``fourier`` (Re F(k), Im F(k)), and 1 value, H(k),
        for ``hartley_full``.
    pe_type : str
        Positional encoding, one of :data:`PE_TYPES`. Default ``"gaussian"``: random Fourier features with
        standard deviation ``feat_sigma``, the default of cryoDRGN's train_vae (so our defaults learn at least
        as well); unlike the axis-aligned geometric encodings its frequencies point in all directions, so the
        decoder is not biased toward the lattice axes. ``"geom_ft"`` is the paper's geometric encoding
        (wavelengths from 1 to Nyquist along x, y and z), ``"geom_lowf"`` the same with every wavelength 2π
        times longer, ``"none"`` the raw coordinates.
    pe_dim : int or None
        Number of frequencies per axis (geometric) or a third of the number of random frequencies (gaussian);
        None = box_size // 2.
    feat_sigma : float
        Standard deviation of the random frequencies of the gaussian encoding, in units of the box's Nyquist
        frequency scale (the phase of frequency ω at coordinate k is (D/2)·(k·ω), ω ~ N(0, feat_sigma²)).
    domain : str
        What the decoder network outputs (see :mod:`cryoscape.models.decoders`): ``"hartley"`` the pair
        (H(k), H(-k)) at points of the canonical half-space (one evaluation per Hermitian pair; fastest per
        image), ``"hartley_full"`` one value H(k) at any k, evaluated at k and at −k (cryoDRGN's Hartley
        decoder: twice the evaluations per image; its latent space organises in fewer epochs), or
        ``"fourier"`` (Re F(k), Im F(k)) on the canonical half-space (cryoDRGN's Fourier decoder; the
        Hartley pair is (Re − Im, Re + Im)).
    activation : str
        One of :data:`ACTIVATIONS`.
    encoder_input : str
        ``"hartley"``: the encoder sees the masked Hartley transform of the (CTF sign-flipped) image;
        ``"real"``: the masked real-space pixels.
    enc_mask_radius_px : float or None
        Radius (pixels; frequency pixels for Hartley input) of the disc of image values fed to the encoder;
        None = box_size/2 − 1.
    seam_band_px : float
        Pair domains (``hartley``, ``fourier``) only: half-width, in frequency pixels, of the band around the
        kz = 0 plane in which the two half-space evaluations are blended linearly, so that the decoded
        transform is continuous across the plane (see :mod:`cryoscape.models.decoders`). 0 is the hard switch
        of cryoDRGN's Fourier decoder, which leaves a jump across the plane. Configs written before this
        field existed load with 0, the behaviour they were trained with. Ignored by ``hartley_full``.
    first_layer_init : str
        Initial weights of the decoder's first layer, W_k·PE(k) + b + W_z·z, one of :data:`FIRST_LAYER_INITS`.
        ``"joint"``: as ONE ``nn.Linear`` over the concatenation [PE(k), z] (cryoDRGN's layer), every weight
        and the bias from U(±1/√(F + zdim)) for F encoded features, so z starts with a share of the
        pre-activation of about zdim/(zdim + F/2). ``"separate"``: ``nn.Linear``'s own bound per part,
        U(±1/√zdim) for W_z, so z starts with about two thirds of it. ``"auto"`` (default) is ``"joint"``
        for ``hartley_full`` and for pair decoders (``hartley``, ``fourier``) with zdim ≥ 2, else
        ``"separate"`` (at zdim 0 the two draw from the same distribution).
        The joint init is what lets the pair decoder's per-image FSC at equal epochs match cryoDRGN's
        ``fourier`` decoder; at zdim 1 (KL weight 1/zdim = 1) it let a small two-state latent go unused, which
        the separate init does not (figures: README, ``benchmarks/results/vs_cryodrgn_fsc_gap_study.json``).
        Configs written before this field load the init they were trained with: ``"separate"`` for pair
        decoders, ``"joint"`` for ``hartley_full``.
    """

    zdim: int = 8
    enc_dim: int = 256
    enc_layers: int = 3
    dec_dim: int = 256
    dec_layers: int = 3
    pe_type: str = "gaussian"
    pe_dim: int | None = None
    feat_sigma: float = 0.5
    domain: str = "hartley"
    activation: str = "relu"
    encoder_input: str = "hartley"
    enc_mask_radius_px: float | None = None
    seam_band_px: float = 1.0
    first_layer_init: str = "auto"

    def __post_init__(self) -> None:
        choices = {"pe_type": PE_TYPES, "domain": DOMAINS, "activation": ACTIVATIONS,
                   "encoder_input": ENCODER_INPUTS, "first_layer_init": FIRST_LAYER_INITS}
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise InputError(f"model setting {name}={value!r} is not supported",
                                 fix=f"use one of {', '.join(allowed)}")
        for name in ("zdim", "enc_layers", "dec_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InputError(f"model setting {name}={value!r} must be a non-negative integer")
        for name in ("enc_dim", "dec_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"model setting {name}={value!r} must be a positive integer")
        if self.pe_dim is not None and (not isinstance(self.pe_dim, int) or self.pe_dim < 1):
            raise InputError(f"model setting pe_dim={self.pe_dim!r} must be a positive integer or null")
        if not self.feat_sigma > 0:
            raise InputError(f"model setting feat_sigma={self.feat_sigma!r} must be positive")
        if isinstance(self.seam_band_px, bool) or not isinstance(self.seam_band_px, (int, float)) \
                or not self.seam_band_px >= 0:
            raise InputError(f"model setting seam_band_px={self.seam_band_px!r} must be a number >= 0")
        if self.enc_mask_radius_px is not None and not self.enc_mask_radius_px > 0:
            raise InputError(f"model setting enc_mask_radius_px={self.enc_mask_radius_px!r} must be positive "
                             "or null")

    def resolved_pe_dim(self, box_size: int) -> int:
        """Number of frequencies per axis for this box: ``pe_dim`` or box_size // 2."""
        return self.pe_dim if self.pe_dim is not None else box_size // 2

    def resolved_first_layer_init(self) -> str:
        """``"joint"`` or ``"separate"``: :attr:`first_layer_init` with ``"auto"`` resolved (see above)."""
        if self.first_layer_init != "auto":
            return self.first_layer_init
        return "joint" if self.domain == "hartley_full" or self.zdim >= 2 else "separate"

    def resolved_enc_mask_radius_px(self, box_size: int) -> float:
        """Radius of the encoder's input disc for this box: ``enc_mask_radius_px`` or box_size/2 − 1."""
        return float(self.enc_mask_radius_px) if self.enc_mask_radius_px is not None else box_size / 2 - 1

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping of the fields (the ``model`` section of ``config.yaml``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], path: str | None = None) -> ModelConfig:
        """Build from a mapping (the ``model`` section of a ``config.yaml`` or checkpoint).

        Unknown keys, values of the wrong type and invalid values raise :class:`InputError` naming ``path``
        (see :func:`cryoscape.configio.dataclass_from_mapping`). A mapping without ``seam_band_px`` was
        written before the seam band existed and gets 0, the hard switch it was trained with; one without
        ``first_layer_init`` gets the init it was trained with (``"joint"`` for ``hartley_full``, else
        ``"separate"``).
        """
        values = dict(values)
        values.setdefault("seam_band_px", LEGACY_SEAM_BAND_PX)
        values.setdefault("first_layer_init", "joint" if values.get("domain") == "hartley_full" else "separate")
        return dataclass_from_mapping(cls, values, path=path, section="model")
