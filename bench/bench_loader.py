"""Loader benchmarks for 2D training (not a test): run it, read the ratios.

1. Loader share: the time an epoch spends waiting for batches, as a share of the
   whole step time (target ≤ 5 %), on the spleen toy case store.
2. Precomputed distance maps (segline: read from ``dist2d.npy``) vs computing them
   per sample in the loader as the reference implementation does (scipy EDT of each
   one-hot class), same net, same data, same batches: epoch time ratio (target ≥ 2×).

Usage (after ``make -f spleen.make TOY=1 data``)::

    .venv/bin/python bench/bench_loader.py --cases data/spleen-toy/cases \\
        --dist data/spleen-toy/dist --nets none,Dimwit,ENet --size 0

``--nets none`` times the loader alone (no training step): the cost of the per-sample
transform itself, which the epoch ratio dilutes by the step time.

``--size N`` > 0 resizes every slice to N×N (e.g. 512: the real spleen's in-plane size)
so the cost of a per-sample distance transform is measured at realistic sizes.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import DataLoader, Dataset

from segline.casestore import CaseStore
from segline.data.slices import SliceDataset, pad_collate
from segline.losses import CombinedLoss
from segline.nets import get_net


def reference_dist(onehot: np.ndarray, spacing_yx: tuple[float, float]) -> np.ndarray:
    """Per-sample signed distance, the reference implementation's way (scipy EDT per class)."""
    out = np.zeros_like(onehot, dtype=np.float32)
    for k in range(onehot.shape[0]):
        pos = onehot[k].astype(bool)
        if pos.any():
            neg = ~pos
            out[k] = (
                ndimage.distance_transform_edt(neg, sampling=spacing_yx) * neg
                - (ndimage.distance_transform_edt(pos, sampling=spacing_yx) - 1) * pos
            )
    return out


class Resized(Dataset):
    """Wraps a SliceDataset; optionally resizes to N×N; optionally recomputes dist."""

    def __init__(
        self, base: SliceDataset, size: int, on_the_fly: bool, spacing: tuple[float, float]
    ):
        self.base, self.size, self.on_the_fly, self.spacing = base, size, on_the_fly, spacing

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.base[i]
        if self.size:
            for key, mode in (("image", "bilinear"), ("target", "nearest"), ("dist", "bilinear")):
                if key in item:
                    item[key] = torch.nn.functional.interpolate(
                        item[key][None], size=(self.size, self.size), mode=mode
                    )[0]
        if self.on_the_fly:
            item["dist"] = torch.from_numpy(reference_dist(item["target"].numpy(), self.spacing))
        return item


def epoch(
    model: torch.nn.Module | None,
    loader: DataLoader,
    crit: CombinedLoss,
    opt: torch.optim.Optimizer | None,
    steps: int,
) -> tuple[float, float]:
    """(total seconds, seconds waiting for the loader) over ``steps`` batches.

    ``model=None`` only draws the batches (the loader's own cost, no training step).
    """
    wait = 0.0
    t0 = time.perf_counter()
    it = iter(loader)
    for _ in range(steps):
        tw = time.perf_counter()
        batch = next(it)
        wait += time.perf_counter() - tw
        if model is None or opt is None:
            continue
        logits = model(batch["image"])
        loss, _ = crit(logits, batch, epoch=0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0, wait


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="data/spleen-toy/cases")
    p.add_argument("--dist", default="data/spleen-toy/dist")
    p.add_argument("--nets", default="none,Dimwit,ENet", help="'none': the loader alone")
    p.add_argument("--size", type=int, default=0)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.manual_seed(0)
    store = CaseStore(args.cases, args.dist)
    cases = store.case_ids("train")
    spacing = tuple(store.meta(cases[0])["spacing"][1:])
    crit = CombinedLoss.from_spec("gdl:1,boundary:0.01[schedule=rebalance]", store.n_classes)
    print(
        f"threads {torch.get_num_threads()}, slices {'native' if not args.size else args.size}, "
        f"batch {args.batch_size}, {args.steps} steps, median of {args.repeats}"
    )
    print(
        f"{'net':10s} {'precomputed s':>14s} {'loader share':>13s} {'on-the-fly s':>13s} "
        f"{'loader share':>13s} {'speed-up':>9s}"
    )
    for net_name in args.nets.split(","):
        res = {}
        for fly in (False, True):
            base = SliceDataset(store, cases, dist_kind="2d")
            ds = Resized(base, args.size, fly, spacing)
            model = opt = None
            if net_name != "none":  # "none": loader only
                model = get_net(net_name, store.n_channels, store.n_classes)
                opt = torch.optim.Adam(model.parameters(), lr=1e-4)
            gen = torch.Generator().manual_seed(0)
            loader = DataLoader(
                ds, batch_size=args.batch_size, shuffle=True, generator=gen, collate_fn=pad_collate
            )
            epoch(model, loader, crit, opt, 2)  # warm-up
            runs = [epoch(model, loader, crit, opt, args.steps) for _ in range(args.repeats)]
            total = float(np.median([r[0] for r in runs]))
            share = float(np.median([r[1] / r[0] for r in runs]))
            res[fly] = (total, share)
        print(
            f"{net_name:10s} {res[False][0]:14.3f} {res[False][1]:12.1%} {res[True][0]:13.3f} "
            f"{res[True][1]:12.1%} {res[True][0] / res[False][0]:8.2f}x"
        )


if __name__ == "__main__":
    main()
