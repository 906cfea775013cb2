"""Weakly supervised 3D vessel segmentation from 2D annotations of a maximum intensity
projection (after Guo et al., IEEE TMI 2024; the ``vessels.make`` pipeline).

Two data stages sit between the case store and 3D training:

- :mod:`~segline.experiments.vessels.mip` (``preprocess/mip.py``, ``data/<ds>/mip``):
  per case the maximum intensity projection (MIP) of the image along one axis, the
  depth of each ray's brightest voxel, and the 2D label a person would draw on the
  MIP (simulated as the projection of the 3D label), optionally with occluders
  (bone above a threshold in HU, :mod:`~segline.experiments.vessels.occluders`)
  removed before the projection;
- :mod:`~segline.experiments.vessels.pseudo` (``preprocess/pseudo.py``,
  ``data/<ds>/pseudo``): 3D pseudo-labels (0 background, 1 vessel, 255 unlabelled)
  grown from the 2D label and the image only, their signed distance maps, and their
  quality against the true 3D labels.

Training plugs into the core trainer's hooks (:mod:`segline.train.loop`):

- :mod:`~segline.experiments.vessels.train` (``python -m
  segline.experiments.vessels.train``, make's ``TRAINER``): the shared options plus
  ``--label-source``, ``--pseudo`` and ``--mip``;
- :mod:`~segline.experiments.vessels.inputs`: where the training labels come from
  (the pseudo-labels) and the MIP keys of a patch or volume batch (``mip_label``,
  ``mip_depth``, ``mip_valid``, ``mip_axis``);
- :mod:`~segline.experiments.vessels.loss`: the MIP loss (``mip`` in a loss spec)
  and the fused method's loss (``mip_fused``);
- :mod:`~segline.experiments.vessels.fused`: the fused method's network
  (``--net MipFused``: a 3D U-Net fused at the MIP index with a 2D one on the MIP),
  imported by the trainer only when ``--net`` names it;
- :mod:`~segline.experiments.vessels.mipdice`: the ``mip_dice`` metric (its registry
  record, the training's rows against the MIP store, the evaluation stage's rows in
  the source geometry);
- :mod:`~segline.experiments.vessels.report` and
  :mod:`~segline.experiments.vessels.figures`: the core report and figures with
  ``mip_dice`` registered (make's ``REPORTER`` and ``PLOTTER``).

Importing this package imports nothing else (each module is imported where it is
used), so a stage's code dependencies hold only the modules it ran.
"""
