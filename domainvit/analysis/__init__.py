"""Task-free analysis behind the notebooks in ``notebooks/``: statistics and figures.

:mod:`~domainvit.analysis.statistics` holds statistics of predictions that hold for any
task (Bland-Altman agreement, ROC curves, calibration, selective accuracy, confusions) and
:mod:`~domainvit.analysis.common` what every analysis shares (bundled checkpoints, models,
confusion-matrix figures, legends, saved figures). Nothing here imports a task: the
analyses of a task's own data live next to it (``domainvit.tasks.<name>.analysis``:
medseg, medcls, hsi). Every analysis is split in two: functions that compute and return
data (pandas DataFrames, numpy arrays, dicts) and ``plot_*`` functions that draw that
data into a matplotlib :class:`~matplotlib.figure.Figure` (titles, axis labels with
units, legends) and return it. The notebooks only call them, show the results and
explain them.
"""
