"""cryoscape.plotting: every picture cryoscape draws, from arrays (numpy and matplotlib only; no torch, no run files).

Modules, one job each: :mod:`~cryoscape.plotting.figures` (figures on their own Agg canvas, text that fits,
integer colour bars, atomic PNG files), :mod:`~cryoscape.plotting.labels` (axis labels: PC1, UMAP1, z …),
:mod:`~cryoscape.plotting.latent` (joint plots, clusters, traversal points, 1-D histograms),
:mod:`~cryoscape.plotting.curves` (explained variance, learning curve), :mod:`~cryoscape.plotting.maps`
(montages of map series), :mod:`~cryoscape.plotting.chimerax` (ChimeraX movie scripts),
:mod:`~cryoscape.plotting.fsc` (FSC curves with resolutions), :mod:`~cryoscape.plotting.confusion` (label
agreement of two runs) and :mod:`~cryoscape.plotting.landscape` (landscape states).

No module switches matplotlib's backend or imports pyplot, so importing cryoscape leaves a notebook's or a GUI's
matplotlib as it was.
"""
