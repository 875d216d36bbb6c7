"""cryoscape.models: positional encodings, the coordinate-MLP decoder, the image encoder and the VAE.

Pure torch, no file I/O. See :mod:`cryoscape.models.decoders` for the coordinate and Hermitian conventions.
The configuration names are imported eagerly (no torch); the torch modules are imported on first use of one of
their names, so that reading a config or printing a command's ``--help`` does not load torch.
"""

from importlib import import_module

from cryoscape.models.config import ACTIVATIONS, DOMAINS, ENCODER_INPUTS, PE_TYPES, ModelConfig

#: Name → submodule that defines it (imported when the name is first used).
_LAZY = {
    "Decoder": "decoders", "Encoder": "encoders", "encoder_input_size": "encoders", "encoder_mask": "encoders",
    "encoder_mask_indices": "encoders", "PositionalEncoding": "positional", "HetVAE": "vae",
    "HomogeneousModel": "vae", "build_model": "vae",
}

__all__ = ["ACTIVATIONS", "DOMAINS", "ENCODER_INPUTS", "PE_TYPES", "ModelConfig", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f"cryoscape.models.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cryoscape.models' has no attribute {name!r}")
