"""Write the content stamp of a target built before stamps existed.

make/common.mk makes every dependent of a recorded stage target ``dir/name`` depend on
its content stamp ``dir/.name.content`` (:func:`segline.stage.write_stamp`), which the
stage rewrites only when the target's content digest changes (early cutoff). A target
built by an older segline has no stamp; the stamp's rule then runs this tool, which
writes it from the target's content digest (:func:`segline.stage.content_digest`: the
recorded ``.sha256`` when it is fresh) with the *target's* modification time, so
nothing already built after the target is rebuilt.

It does nothing for a target that does not exist (``make -n`` before the target is
built: its stage writes the stamp) or whose stamp exists (written meanwhile by its
stage). Not a stage itself (no records), and light: no torch.

    python -m segline.stage_stamp data/spleen/cases
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from segline import stage
from segline.cli import prog, run


def stamp_from_target(target: Path) -> bool:
    """Write the missing content stamp of ``target`` with the target's modification time;
    returns whether it was written (False: no target, or a stamp already there)."""
    stamp = stage.side_file(target, stage.STAMP_KIND)
    if stamp.exists() or not target.exists():
        return False
    mtime_ns = target.stat().st_mtime_ns
    stage.write_stamp(target, stage.content_digest(target))
    os.utime(stamp, ns=(mtime_ns, mtime_ns))
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Write the content stamps of the given targets that lack one."""
    parser = argparse.ArgumentParser(
        prog=prog("python -m segline.stage_stamp"),
        description="Write the missing content stamp dir/.name.content of recorded stage "
        "targets built before stamps existed (make/common.mk runs it).",
    )
    parser.add_argument("targets", nargs="+", type=Path, help="stage targets (files or folders)")
    args = parser.parse_args(argv)
    for target in args.targets:
        if stamp_from_target(target):
            print(f"[{target.name}] content stamp written from its digest (built before stamps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
