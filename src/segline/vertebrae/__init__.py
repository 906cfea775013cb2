"""Vertebra instance segmentation: the iterative FCN of Lessmann et al.
(2019) and a semantic 3D U-Net to compare it with, trained by
``python -m segline.vertebrae.train``.

The network is :class:`segline.nets.iterative_fcn.IterativeFCN`. Modules:
:mod:`~segline.vertebrae.order` (which vertebra comes first),
:mod:`~segline.vertebrae.sampler`
(training patches with an instance memory), :mod:`~segline.vertebrae.loss`,
:mod:`~segline.vertebrae.inference` (the iterative sweep along the spine),
:mod:`~segline.vertebrae.postprocess` (the semantic method's largest component per class),
:mod:`~segline.vertebrae.train` (the trainer and its command line) and
:mod:`~segline.vertebrae.apply` (``predict_volume`` for a trained method folder).
"""
