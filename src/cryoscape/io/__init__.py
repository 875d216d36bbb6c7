"""cryoscape.io: reading and writing the files of cryo-EM processing (no torch).

Modules
-------
records  : :class:`Poses` and :class:`CTFParams`, the per-particle records every reader returns.
mrc      : MRC volumes and stacks; eager or memory-mapped reads, lazy :class:`MrcStackReader`, atomic writes.
star     : RELION STAR files (3.0 without optics, 3.1/4/5 with optics groups); ``read_star``, ``write_star``.
cs       : cryoSPARC ``.cs`` structured arrays; ``read_cs``, ``write_cs``.
stacks   : ``open_images`` → :class:`ImageSource` over ``.mrcs``/``.mrc``/``.star``/``.cs``/``.txt`` (lazy).
metadata : ``read_poses`` and ``read_ctf`` from ``.star``/``.cs``/``.pkl``.
legacy   : cryoDRGN pickles (poses, CTF, indices, latents) with a restricted, code-free unpickler.

Importing this package imports none of its modules; import the one you need.
"""
