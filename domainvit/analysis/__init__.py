"""Analyses behind the notebooks in ``notebooks/``: data functions and figures.

:mod:`~domainvit.analysis.clinical` (segmentation and classification of the brain
benchmarks) and :mod:`~domainvit.analysis.remote_sensing` (the hyperspectral benchmark
and the Sentinel-2 scene) split every analysis in two: functions that compute and return
data (pandas DataFrames, numpy arrays, dicts) and ``plot_*`` functions that draw that
data into a matplotlib :class:`~matplotlib.figure.Figure` (titles, axis labels with
units, legends) and return it. The notebooks only call them, show the results and
explain them. :mod:`~domainvit.analysis.common` holds what both share.
"""
