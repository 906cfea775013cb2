"""Training CLI (``python -m segline.train``): one method = one run = one result folder."""
