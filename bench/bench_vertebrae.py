"""The iterative FCN's costs on the vertebrae toy: inference per volume, network calls
per vertebra, and one training step in fp32 against the default precision.

Needs a trained iterative method and its case store (``make -f vertebrae.make TOY=1``):

    .venv/bin/python bench/bench_vertebrae.py                      # the toy's defaults
    .venv/bin/python bench/bench_vertebrae.py --method results/vertebrae-toy/iterative \\
        --cases data/vertebrae-toy/cases --dist data/vertebrae-toy/dist --steps 20

1. **Inference**: for every test case, the sweep of
   :func:`segline.experiments.vertebrae.inference.iterative_segment` with the trained
   network (the way the trainer evaluates and ``predict`` applies it, in the precision
   the training used), timed end to end;
   printed per case with the network calls, the ground-truth vertebrae, the
   instances found and the identified ones (matched Dice >= 0.5), then the medians and
   the calls per vertebra over all cases.
2. **Training step** (forward, weighted-BCE + completeness loss, backward, Adam) on
   batches of the method's own sampler (patch, batch size, weights from ``args.json``),
   fp32 against ``AMP=auto`` (bf16 autocast where the CPU has AVX512-BF16/AMX, else
   fp32 too), interleaved round by round from the same weights so that background
   load hits both alike; medians and the median of the per-round ratios.

Numbers depend on the machine: say which CPU (the script prints it) when quoting them.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from bench_pseudo import cpu_model  # bench/ is on sys.path when run as a script
from segline.casestore import CaseStore
from segline.experiments.vertebrae.inference import MIN_VOXELS, iterative_segment, net_step
from segline.experiments.vertebrae.loss import IterativeLoss
from segline.experiments.vertebrae.sampler import IterativeSampler
from segline.metrics.instances import instance_rows
from segline.nets import get_net
from segline.train import device as dev


def load_model(method: Path, n_channels: int) -> tuple[torch.nn.Module, dict]:
    """The method's best network (CPU, eval mode) and its ``args.json``."""
    args = json.loads((method / "args.json").read_text())
    if args.get("method") != "iterative":
        raise SystemExit(f"{method}: not an iterative method folder (args.json 'method')")
    model = get_net(args["net"], n_channels + 1, 1, **args.get("net_kwargs", {}))
    model.load_state_dict(torch.load(method / "best.pt", map_location="cpu", weights_only=True))
    return model.eval(), args


def bench_inference(model: torch.nn.Module, args: dict, store: CaseStore) -> None:
    """Time the sweep on every test case; print per case and the medians."""
    precision = dev.for_model(dev.choose("cpu", str(args.get("amp", "auto"))), model)
    patch = [int(p) for p in args["patch"]]
    step = net_step(model, precision, (patch[1], patch[2]))
    names = {int(k): str(v) for k, v in store.dataset["labels"].items() if int(k)}
    print(f"inference ({precision.describe()}, patch {patch}):")
    print("| case | seconds | net calls | vertebrae | found | identified | calls/vertebra |")
    print("|---|---|---|---|---|---|---|")
    seconds, calls_all, vertebrae_all = [], 0, 0
    for case in store.case_ids("test"):
        image = np.asarray(store.image(case), dtype=np.float32)
        gt = np.asarray(store.label(case))
        start = time.perf_counter()
        labels, calls = iterative_segment(step, image, patch, min_voxels=MIN_VOXELS)
        took = time.perf_counter() - start
        rows = instance_rows(labels, gt, tuple(store.meta(case)["spacing"]), names)
        spine = {r["metric"]: r["value"] for r in rows if r["class"] == "spine"}
        n = int(np.count_nonzero(np.unique(gt)))
        identified = round(spine["id_rate"] * n)
        seconds.append(took)
        calls_all += calls
        vertebrae_all += n
        print(
            f"| {case} | {took:.2f} | {calls} | {n} | {int(labels.max())} | {identified} "
            f"| {calls / n:.2f} |"
        )
    print(
        f"median {statistics.median(seconds):.2f} s per volume; "
        f"{calls_all / vertebrae_all:.2f} net calls per vertebra over "
        f"{vertebrae_all} vertebrae"
    )


def bench_step(
    model: torch.nn.Module, args: dict, store: CaseStore, dist: Path, steps: int
) -> None:
    """fp32 vs the default precision for one training step; print the medians."""
    patch = [int(p) for p in args["patch"]]
    weight_map = tuple(args["weight_map"]) if args.get("weight_map") else None
    store_with_dist = CaseStore(store.root, dist) if weight_map else store
    sampler = IterativeSampler(
        store_with_dist,
        store.case_ids("train"),
        patch,
        samples_per_epoch=int(args["batch_size"]) * (steps + 2),
        seed=0,
        weight_map=weight_map,
        aug="none",
    )
    bs = int(args["batch_size"])
    batches = []
    for b in range(steps + 2):
        items = [sampler[b * bs + i] for i in range(bs)]
        batches.append(
            {
                k: torch.stack([torch.as_tensor(it[k]) for it in items]).float()
                for k in ("image", "target", "weight", "complete")
            }
        )
    loss = IterativeLoss.from_spec(args["losses"])
    modes = {"fp32": dev.choose("cpu", "off"), "default": dev.choose("cpu", "auto")}
    nets = {}
    for name, precision in modes.items():
        net = copy.deepcopy(model).train()
        modes[name] = dev.for_model(precision, net)
        nets[name] = (net, torch.optim.Adam(net.parameters(), lr=1e-4))
    times: dict[str, list[float]] = {name: [] for name in modes}
    for i, batch in enumerate(batches):
        for name, precision in modes.items():
            net, opt = nets[name]
            start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            with precision.autocast():
                outputs = net(batch["image"])
            total, _ = loss(outputs, batch)
            total.backward()
            opt.step()
            if i >= 2:  # two warm-up steps
                times[name].append(time.perf_counter() - start)
    ratios = [f / d for f, d in zip(times["fp32"], times["default"], strict=True)]
    print(
        f"training step, batch {bs} x {patch} ({len(times['fp32'])} steps each, interleaved): "
        f"fp32 {statistics.median(times['fp32']) * 1e3:.0f} ms, default "
        f"({modes['default'].describe()}) {statistics.median(times['default']) * 1e3:.0f} ms, "
        f"fp32/default {statistics.median(ratios):.2f}x"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", type=Path, default=Path("results/vertebrae-toy/iterative"))
    p.add_argument("--cases", type=Path, default=Path("data/vertebrae-toy/cases"))
    p.add_argument("--dist", type=Path, default=Path("data/vertebrae-toy/dist"))
    p.add_argument("--steps", type=int, default=20, help="timed training steps per precision")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: as make -j2 runs)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    store = CaseStore(args.cases)
    model, margs = load_model(args.method, store.n_channels)
    print(f"CPU: {cpu_model()}; bf16: {dev.cpu_has_bf16()}; torch threads: {args.threads}")
    bench_inference(model, margs, store)
    bench_step(model, margs, store, args.dist, args.steps)


if __name__ == "__main__":
    main()
