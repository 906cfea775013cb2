"""Elastic Boundary Projection (EBP) as a segline method: a 2D network moves elastic
shells of radii around pivots onto an organ's boundary, and a 3D mask is rebuilt from
the shells of many pivots (docs/ARCHITECTURE.md, README "EBP").

Modules: :mod:`.geometry` (directions, the signed target, sampling on shells, the
network input, the shell iteration and its convergence), :mod:`.shells` (which pivots
are kept), :mod:`.vote` (the 3D reconstruction), :mod:`.inference` (a whole case),
:mod:`.net` and :mod:`.loss` (the shell network and OHEM), :mod:`.sampler` (training
states on the fly), :mod:`.roi` (where test pivots go), :mod:`.apply` (the predictor)
and :mod:`.train` (the trainer, ``python -m segline.experiments.ebp.train``).
"""
