"""Preprocessing: intensity normalisation, resampling, geometry bookkeeping, split.

Modules: :mod:`~segline.preprocess.window` (CT window, percentile scaling),
:mod:`~segline.preprocess.resample` (grid changes, one-hot label resampling),
:mod:`~segline.preprocess.geometry` (meta.json, crop/pad, back to source NIfTI),
:mod:`~segline.preprocess.split` (train/val/test by natural order) and
:mod:`~segline.preprocess.slicing` (the stage driver and adapter registry).
"""
