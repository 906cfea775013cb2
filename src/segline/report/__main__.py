"""``python -m segline.report``."""

from segline.cli import entry
from segline.report.build import main

if __name__ == "__main__":
    entry(main)
