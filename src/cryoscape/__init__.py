"""cryoscape: heterogeneous cryo-EM reconstruction with deep generative models of 3-D density.

The package is layered (see DESIGN.md): ``geometry`` and ``io`` at the bottom, then ``data``, ``models``,
``training``/``runs``/``reconstruct``/``simulate``, ``analysis`` and finally ``cli``. Importing the package has no
side effects and does not import torch.
"""

__version__ = "0.1.0"
