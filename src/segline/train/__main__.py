"""``python -m segline.train``."""

from segline.cli import entry
from segline.train.cli import main

if __name__ == "__main__":
    entry(main)
