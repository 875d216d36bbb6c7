"""Geometry: pure math on rotations, Fourier lattices and the CTF (no file I/O).

Modules (import them directly; this package imports nothing, so that the torch-free ``io`` layer can use
``rotations`` without pulling in torch):

- ``rotations`` (numpy only): RELION ZYZ Euler angles ⇄ matrices, axis-angle exp map, quaternions
  ``(w, x, y, z)``, uniform random rotations.
- ``lattice`` (numpy): centred frequencies in cycles per pixel, central-slice coordinates, disc masks, the
  Hermitian half of the disc.
- ``fourier`` (numpy | torch): centred FFT and Hartley transforms, Fourier crop/pad, sub-pixel translation.
- ``ctf`` (numpy | torch): RELION's CTF model.
- ``slicing`` (torch): central slices of a Fourier volume and their adjoint.

Conventions shared by every layer (each pinned by a test in ``tests/geometry``):

- Images ``(N, D, D)`` indexed ``[y, x]``; volumes ``[z, y, x]``; D even; real-space origin and DC at index
  ``D//2`` (centred transforms ``fftshift(fftn(ifftshift(x)))``; index ``i`` ↔ ``(i - D//2)/D`` cycles/pixel).
- Rotation ``R = euler_to_matrix([rot, tilt, psi])`` is RELION's ``Euler_angles2matrix`` = ``Rz(psi) Ry(tilt)
  Rz(rot)`` with transposed (passive) elementary matrices; equal to cryoDRGN's pose matrices.
- Fourier slice: the 2-D frequency ``k = (kx, ky, 0)`` of the image at pose ``R`` is the 3-D frequency
  ``k @ R``; in real space the image is ``P(x, y) = Σ_z V(Rᵀ (x, y, z))`` (``test_fourier_slice_fixture.py``).
- Translations move image content by ``+shift_px`` (``(sx, sy)``): ``F(k) · exp(-2πi k·s / D)``.
- CTF: RELION's, ``+w`` at zero frequency (white particles from positive density).
"""
