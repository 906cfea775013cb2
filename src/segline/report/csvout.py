"""The report's CSVs: ``report.csv`` (one row per results row, statistics on the rows
they concern, :func:`csv_text`) and ``report_cases.csv`` (every per-case value, long
format, :func:`cases_csv_text`), at full precision.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import pandas as pd

from segline.report.config import wall_seconds
from segline.report.model import GroupCases, Row
from segline.report.statistics import Comparison
from segline.report.tables import epochs_text
from segline.results import MethodResults, is_distance


def csv_text(
    dataset: str,
    rows: Sequence[Row],
    comparisons: Sequence[Comparison],
    runs: Sequence[MethodResults],
    reference: str | None = None,
    stat_reference: str | None = None,
) -> str:
    """One CSV row per results row (full precision), statistics on the class-mean rows
    of the compared methods (``stat_<metric>_*``), wall time per training.

    Besides difference, CI, p, Holm p, verdict and n, per metric
    ``stat_<metric>_ci_indicative`` (n < 10),
    ``_bca_lo``, ``_bca_hi``, ``_bca_method`` (BCa or percentile where BCa is
    undefined), ``_n_nonzero``, ``_min_p`` (smallest attainable Holm p) and
    ``_verdict_note`` (why no verdict is possible; the verdict column stays plain)."""
    seconds = {r.label: wall_seconds(r) for r in runs}
    stat_of = {(c.method, c.metric): c for c in comparisons}
    stat_cls = {}
    for r in rows:
        stat_cls[r.method] = r.cls  # the last class row is the mean (or the only class)
    records = []
    folded = any(r.fold is not None for r in rows)
    for r in rows:
        single = len(r.best_epochs) == 1
        rec: dict[str, object] = {
            "dataset": dataset,
            "method": r.method,
            "seed": "" if r.seed is None else r.seed,
            **({"fold": "" if r.fold is None else r.fold} if folded else {}),
            "pooled_seeds": len(r.best_epochs) if r.pooled else "",
            "class": r.cls,
            "best_epoch": r.best_epochs[0] if single else epochs_text(r.best_epochs),
            "epochs_trained": r.epochs_trained[0] if single else epochs_text(r.epochs_trained),
            "n_val_cases": r.n_val,
            "val_dice": r.val_dice,
            "n_test_cases": r.test["dice"].n,
        }
        for m in r.test:
            s = r.test[m]
            rec |= {
                f"test_{m}_mean": s.mean,
                f"test_{m}_sd": s.sd,
                f"test_{m}_undefined": s.n_undefined,
            }
        rec["best_val_dice"] = "val_dice" in r.best
        rec |= {f"best_test_{m}": m in r.best for m in r.test}
        rec |= {f"{m}_fraction_of_{reference}": v for m, v in r.fraction.items()}
        rec["train_seconds"] = (
            seconds.get(r.label, math.nan)
            if not r.pooled
            else sum(v for k, v in seconds.items() if k.startswith(f"{r.method}/"))
        )
        if stat_reference is not None:
            rec["stat_reference"] = stat_reference
            on = r.summary and r.cls == stat_cls[r.method] and r.method != stat_reference
            for m in r.test:
                c = stat_of.get((r.method, m)) if on else None
                rec |= {
                    f"stat_{m}_diff": c.diff if c else math.nan,
                    f"stat_{m}_ci_lo": c.lo if c else math.nan,
                    f"stat_{m}_ci_hi": c.hi if c else math.nan,
                    f"stat_{m}_p": c.p if c else math.nan,
                    f"stat_{m}_p_holm": c.p_holm if c else math.nan,
                    f"stat_{m}_verdict": c.verdict if c else "",
                    f"stat_{m}_n": c.n if c else "",
                }
                rec |= {
                    f"stat_{m}_ci_indicative": c.indicative if c else "",
                    f"stat_{m}_bca_lo": c.bca_lo if c else math.nan,
                    f"stat_{m}_bca_hi": c.bca_hi if c else math.nan,
                    f"stat_{m}_bca_method": c.ci_method if c else "",
                    f"stat_{m}_n_nonzero": c.n_nonzero if c and not c.reason else "",
                    f"stat_{m}_min_p": c.min_p if c else math.nan,
                    f"stat_{m}_verdict_note": c.note if c else "",
                }
                if is_distance(m):
                    rec[f"stat_{m}_undefined_method"] = c.undefined[0] if c else ""
                    rec[f"stat_{m}_undefined_reference"] = c.undefined[1] if c else ""
        records.append(rec)
    buf = io.StringIO()
    pd.DataFrame.from_records(records).to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def cases_csv_text(
    dataset: str,
    cases: Sequence[GroupCases],
    metrics: Sequence[str],
    diagonals: pd.Series | None,
) -> str:
    """Every per-case value, long format: method, seed (k, ``pooled`` or empty), case,
    class, metric, value, and ``value_for_statistics`` (undefined distances as the FOV
    diagonal; empty for distances without a case store)."""
    records = []
    folded = any(gc.folded for gc in cases)
    for gc in cases:
        kinds: list[tuple[str, str, int | None]] = []
        if gc.several:
            kinds = [("" if r.seed is None else str(r.seed),
                      "" if r.fold is None else str(r.fold), i)
                     for i, r in enumerate(gc.group.runs)]
            kinds.append(("pooled", "pooled" if gc.folded else "", None))
        else:
            kinds = [("", "", 0)]
        for seed, fold, run in kinds:
            for cls in gc.class_names:
                for m in metrics:
                    raw = gc.values(m, cls, run)
                    if is_distance(m):
                        filled = (
                            gc.values(m, cls, run, fill=diagonals)
                            if diagonals is not None
                            else pd.Series(math.nan, index=raw.index)
                        )
                    else:
                        filled = raw
                    for case in raw.index:
                        records.append(
                            {
                                "dataset": dataset,
                                "method": gc.group.name,
                                "seed": seed,
                                **({"fold": fold} if folded else {}),
                                "case": case,
                                "class": cls,
                                "metric": m,
                                "value": raw[case],
                                "value_for_statistics": filled[case],
                            }
                        )
    buf = io.StringIO()
    pd.DataFrame.from_records(records).to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()
