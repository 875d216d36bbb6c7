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

from cryoscape.configio import check_choice, check_range, dataclass_from_mapping, option
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
        standard deviation ``feat_sigma``, the default of cryoDRGN's train_vae; unlike the axis-aligned
        geometric encodings its frequencies point in all directions, so the decoder is not biased toward the
        lattice axes. ``"geom_ft"`` is the paper's geometric encoding
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
        ``"separate"`` (at zdim 0 the two draw from the same distribution; why: docs/decisions.md).
        Configs written before this field load the init they were trained with: ``"separate"`` for pair
        decoders, ``"joint"`` for ``hartley_full``.
    """

    zdim: int = option(8, help="latent dimension (default %(default)s)")
    enc_dim: int = option(256, help="encoder width (default %(default)s)")
    enc_layers: int = option(3, help="encoder hidden layers (default %(default)s)")
    dec_dim: int = option(256, flags=("--dim",), help="decoder width (default %(default)s)")
    dec_layers: int = option(3, flags=("--layers",), help="decoder hidden layers (default %(default)s)")
    pe_type: str = option("gaussian", choices=PE_TYPES, help="positional encoding (default %(default)s)")
    pe_dim: int | None = option(None, help="frequencies of the positional encoding (default D/2)")
    feat_sigma: float = option(0.5, help="scale of the gaussian positional encoding (default %(default)s)")
    domain: str = option(
        "hartley", choices=DOMAINS,
        help="decoder output: hartley = pair (H(k), H(-k)) per evaluation on half the frequencies, fastest per "
             "image; hartley_full = cryoDRGN's Hartley decoder (one value, evaluated at k and -k: 2x the cost per "
             "image); fourier = (Re, Im) on half the frequencies, cryoDRGN's Fourier decoder (default %(default)s)")
    activation: str = option("relu", choices=ACTIVATIONS, help="activation (default %(default)s)")
    encoder_input: str = option("hartley", choices=ENCODER_INPUTS,
                                help="encoder sees the CTF-sign-flipped Hartley image or the real image (default "
                                     "%(default)s)")
    enc_mask_radius_px: float | None = option(None, flags=("--enc-mask",),
                                              help="radius of the encoder's input disc (default D/2 - 1)")
    seam_band_px: float = option(
        1.0, help="hartley/fourier: blend the two half-spaces linearly within this many frequency pixels of the "
                  "kz = 0 plane, so the map's transform has no jump there; 0 = cryoDRGN's hard switch (default "
                  "%(default)s)")
    first_layer_init: str = option(
        "auto", choices=FIRST_LAYER_INITS,
        help="initial weights of the decoder's first layer: joint = one Linear over [encoded k, z] as cryoDRGN (a "
             "small initial z projection); separate = each part with its own fan-in (a large one); auto = joint, "
             "except separate for a hartley/fourier decoder with zdim 1 (default %(default)s)")

    def __post_init__(self) -> None:
        check_choice(self.pe_type, PE_TYPES, "pe_type")
        check_choice(self.domain, DOMAINS, "domain")
        check_choice(self.activation, ACTIVATIONS, "activation")
        check_choice(self.encoder_input, ENCODER_INPUTS, "encoder_input")
        check_choice(self.first_layer_init, FIRST_LAYER_INITS, "first_layer_init")
        for name, low in (("zdim", 0), ("enc_layers", 0), ("dec_layers", 0), ("enc_dim", 1), ("dec_dim", 1),
                          ("pe_dim", 1)):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise InputError(f"{name} must be an integer, got {value!r}", fix=f"give {name} an integer")
            check_range(value, name, minimum=low)
        for name, value in (("feat_sigma", self.feat_sigma), ("enc_mask_radius_px", self.enc_mask_radius_px)):
            check_range(value, name, minimum=0, exclusive_minimum=True)
        if isinstance(self.seam_band_px, bool) or not isinstance(self.seam_band_px, (int, float)):
            raise InputError(f"seam_band_px must be a number, got {self.seam_band_px!r}")
        check_range(self.seam_band_px, "seam_band_px", minimum=0)

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
