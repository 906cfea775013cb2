"""Prediction of new images with a trained method (``segline.predict``, ``segline-predict``).

* :mod:`segline.predicting.inputs`: find the images of a folder (nnU-Net channel
  files or one 3D/4D file per case), read and check them, and preprocess each exactly
  as the slicing stage preprocessed the training data (parameters from the case
  store's ``dataset.json``);
* :mod:`segline.predicting.infer`: load a method's network and predict one
  preprocessed volume (2D slice by slice, 3D by sliding window), probabilities back to
  the source geometry;
* :mod:`segline.predicting.labels`: label descriptions for ITK-SNAP and 3D Slicer;
* :mod:`segline.predicting.output`: where predictions may be written (a folder segline
  owns, apart from every input and the project's results/ and data/) and how (each
  method's sub-folder swapped in, recorded in ``.segline-predictions``).
"""
