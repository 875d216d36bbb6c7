"""The models trained by cryoscape: a heterogeneous VAE (encoder + decoder) and a homogeneous decoder.

Both are containers of networks: they expose ``.config`` (:class:`ModelConfig`), ``.box_size``, ``.zdim`` and
``.decoder`` (:class:`Decoder`); the VAE also ``.encoder`` (:class:`Encoder`). The image-formation model that
uses them (slice, CTF, shift, loss) is ``cryoscape.training.step.ReconstructionObjective``; the volume
generator is :meth:`Decoder.eval_volumes`. :func:`build_model` picks the class from ``config.zdim``.
"""

from __future__ import annotations

import torch
from torch import nn

from cryoscape.models.config import ModelConfig
from cryoscape.models.decoders import Decoder
from cryoscape.models.encoders import Encoder, encoder_input_size, encoder_mask_indices


class HetVAE(nn.Module):
    """Heterogeneous VAE: encoder q(z | image) and decoder V(k, z) (poses given, not inferred).

    Parameters
    ----------
    config : ModelConfig
        zdim must be ≥ 1.
    box_size : int
        Box size D of the images (pixels, even).
    generator : torch.Generator, optional
        Source of the decoder's random frequencies (gaussian encoding).

    Attributes
    ----------
    encoder : Encoder
    decoder : Decoder
    enc_mask_indices : torch.Tensor buffer (P_enc,) int64 (not saved in the state dict)
        Flat row-major indices of the encoder's input values in a (D, D) image.
    """

    def __init__(self, config: ModelConfig, box_size: int, generator: torch.Generator | None = None):
        super().__init__()
        if config.zdim < 1:
            raise ValueError("HetVAE needs zdim >= 1 (use HomogeneousModel for zdim = 0)")
        self.config = config
        self.box_size = int(box_size)
        self.zdim = config.zdim
        self.encoder = Encoder(encoder_input_size(self.box_size, config), config)
        self.decoder = Decoder(config, self.box_size, generator)
        mask_indices = encoder_mask_indices(self.box_size, config)
        self.register_buffer("enc_mask_indices", mask_indices, persistent=False)

    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` from prepared (B, D, D) images (Hartley or real space): masks, flattens,
        encodes."""
        flat = images.reshape(images.shape[0], -1)
        return self.encoder(flat[:, self.enc_mask_indices])


class HomogeneousModel(nn.Module):
    """A single volume: the decoder V(k) without latent (zdim = 0).

    Attributes
    ----------
    decoder : Decoder
    """

    zdim = 0

    def __init__(self, config: ModelConfig, box_size: int, generator: torch.Generator | None = None):
        super().__init__()
        if config.zdim != 0:
            raise ValueError("HomogeneousModel needs zdim = 0")
        self.config = config
        self.box_size = int(box_size)
        self.decoder = Decoder(config, self.box_size, generator)


def build_model(config: ModelConfig, box_size: int,
                generator: torch.Generator | None = None) -> HetVAE | HomogeneousModel:
    """A :class:`HetVAE` when ``config.zdim > 0``, else a :class:`HomogeneousModel`.

    Weights are initialised from torch's global RNG (seed it for reproducibility); the gaussian encoding's
    frequencies from ``generator`` when given.
    """
    if box_size % 2 or box_size < 4:
        raise ValueError(f"box_size must be even and >= 4, got {box_size}")
    if config.zdim > 0:
        return HetVAE(config, box_size, generator)
    return HomogeneousModel(config, box_size, generator)
