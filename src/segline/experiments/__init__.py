"""Experiments built on segline's core: each sub-package brings its own trainer
classes (subclasses of :class:`segline.train.loop.Trainer` overriding its hooks),
samplers, losses and inference, and is run by a dataset makefile's ``TRAINER``.

The core (``segline.train``, ``segline.data``, ``segline.predicting``, the evaluation
stage, the report, the plots, the metrics) never imports this package: a trained
method folder names its trainer class in ``args.json`` (``trainer``), and the stages
that apply it import that class by name (:mod:`segline.train.trainers`).
"""
