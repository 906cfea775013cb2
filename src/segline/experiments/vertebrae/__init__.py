"""Vertebra instance segmentation: the iterative FCN of Lessmann et al.
(2019) and a semantic 3D U-Net to compare it with, trained by
``python -m segline.experiments.vertebrae.train`` (``vertebrae.make``'s ``TRAINER``).

The network is :class:`segline.nets.iterative_fcn.IterativeFCN`. Modules:
:mod:`~segline.experiments.vertebrae.order` (which vertebra comes first),
:mod:`~segline.experiments.vertebrae.sampler` (training patches with an instance
memory), :mod:`~segline.experiments.vertebrae.loss`,
:mod:`~segline.experiments.vertebrae.inference` (the iterative sweep along the spine),
:mod:`~segline.experiments.vertebrae.postprocess` (the semantic method's largest
component per class), :mod:`~segline.experiments.vertebrae.train` (the trainers
``IterativeTrainer`` and ``SemanticTrainer`` and their command line),
:mod:`~segline.experiments.vertebrae.apply` (the predictor of a trained method folder,
``predict_volume``) and :mod:`~segline.experiments.vertebrae.evaluate` (the evaluation
stage's instance scores).
"""
