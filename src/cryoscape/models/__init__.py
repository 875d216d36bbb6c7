"""cryoscape.models: positional encodings, the coordinate-MLP decoder, the image encoder and the VAE.

Pure torch, no file I/O. See :mod:`cryoscape.models.decoders` for the coordinate and Hermitian conventions.
"""

from cryoscape.models.config import ACTIVATIONS, DOMAINS, ENCODER_INPUTS, PE_TYPES, ModelConfig
from cryoscape.models.decoders import Decoder
from cryoscape.models.encoders import Encoder, encoder_input_size, encoder_mask, encoder_mask_indices
from cryoscape.models.positional import PositionalEncoding
from cryoscape.models.vae import HetVAE, HomogeneousModel, build_model

__all__ = [
    "ACTIVATIONS", "DOMAINS", "ENCODER_INPUTS", "PE_TYPES", "ModelConfig", "Decoder", "Encoder",
    "encoder_input_size", "encoder_mask", "encoder_mask_indices", "PositionalEncoding", "HetVAE",
    "HomogeneousModel", "build_model",
]
