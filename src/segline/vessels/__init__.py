"""Weakly supervised 3D vessel segmentation from 2D annotations of a maximum intensity
projection (after Guo et al., IEEE TMI 2024; the ``vessels.make`` pipeline).

Two data stages sit between the case store and 3D training:

- :mod:`segline.vessels.mip` (``preprocess/mip.py``, ``data/<ds>/mip``): per case the
  maximum intensity projection (MIP) of the image along one axis, the depth of each
  ray's brightest voxel, and the 2D label a person would draw on the MIP (simulated
  as the projection of the 3D label);
- :mod:`segline.vessels.pseudo` (``preprocess/pseudo.py``, ``data/<ds>/pseudo``):
  3D pseudo-labels (0 background, 1 vessel, 255 unlabelled) grown from the 2D label
  and the image only, their signed distance maps, and their quality against the
  true 3D labels.
"""
