"""The report's fixed prose: the conventions section (:func:`conventions`) and the
explanation under the statistics heading (:data:`STATS_LIMITS_PROSE`).

A metric's own definition comes from its record in :mod:`segline.metrics.registry`
(:data:`METRIC_CONVENTIONS`) and is added only when that metric is reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from segline import stats
from segline.metrics import registry as metric_registry
from segline.results import INSTANCE_METRIC, METRIC_INFO, metric_title

CONVENTIONS_HEAD = f"""\
## Conventions

- Dice(empty, empty) = 1; Dice with exactly one empty mask = 0.
- HD95: 95th percentile of the pooled symmetric surface distances (both directed
  sets of surface-voxel distances concatenated, as medpy), in mm, using the voxel
  spacing. ASSD: mean of the same pooled distances, in mm.
- HD95 and ASSD are undefined (NaN) when exactly one of the two masks is empty (e.g.
  a missed lesion), and 0 when both are. In the results tables, means and sds are
  over the defined cases and the number of undefined cases is given next to them
  (never dropped silently). For the statistics and any ranking on a distance metric
  an undefined case counts as the worst: it is replaced by the case's field-of-view
  diagonal in mm (the largest distance possible in that image: the stored image's
  extent, voxels × spacing, on each axis), and a method with undefined cases is never
  marked best on a distance metric.
- mean ± sd: over cases; sd is the sample standard deviation (n − 1); "–" when not
  computable (no defined case, or only one for the sd).
- Several foreground classes: one row per class, plus a "mean" row whose per-case
  value is the mean over the classes (undefined when any class is undefined).
- Seeds: a method trained with several seeds has one row per seed (method/seed<k>)
  and a pooled row (method) whose per-case value is the mean over its seeds
  (undefined when any seed's is): n stays the number of test cases. "Over seeds":
  mean ± sd (n − 1) of each seed's mean over cases.
- Statistics: paired over the test cases, per-case value = mean over foreground
  classes (and over seeds). Difference = method − reference. 95 % CI: percentile
  bootstrap of the mean difference, {stats.N_BOOT} resamples of the cases, fixed seed.
  p: Wilcoxon signed-rank, two-sided, zero differences dropped (exact when at most
  {stats.EXACT_MAX_N} non-zero differences without ties, else the normal approximation);
  all differences zero → p = 1. Holm: step-down adjustment across the compared
  methods, per metric. Verdict: better / worse when the Holm p < {stats.ALPHA} (direction
  from the sign and the metric: higher Dice, lower distance is better), else "no
  evidence". The verdict cell says when no data at its n could reach p < 0.05: without
  ties the smallest exact p is 2/2^n (n non-zero differences: 0.0625 at n = 5, so at
  least {stats.MIN_N} are needed), tied differences use the normal approximation, which
  can go lower (4 equal differences: p = 0.046), and Holm raises the floor with the
  number of methods compared.
"""
# definitions added to the conventions when the metric is reported
METRIC_CONVENTIONS: Mapping[str, str] = metric_registry.View(
    lambda m: m.convention, keep=lambda m: bool(m.convention)
)
INSTANCE_CONVENTIONS = (
    "- Instances (vertebrae): predicted instances are matched one-to-one to the\n"
    "  ground-truth vertebrae by overlap (Hungarian assignment maximising the summed\n"
    "  Dice; only overlapping pairs); a vertebra is identified when its matched Dice is\n"
    "  at least 0.5. Only the per-case class `spine` is reported and paired in the\n"
    "  statistics: Dice = mean over the case's vertebrae (a missed one counts 0), ASSD =\n"
    "  mean over its matched vertebrae (undefined when none is matched), ID rate =\n"
    "  identified / vertebrae of the case (mean over cases here, not pooled).\n"
)
BOLD_RULE = (
    "- Bold: only a mean difference with evidence (verdict better or worse) in the\n"
    "  statistics tables; the results tables mark no best method, since a higher mean\n"
    "  without evidence is no finding. The CSV's `best_*` columns still name the best\n"
    "  mean per column among the methods' own rows\n"
    "  ({which}; ties all marked;\n"
    "  on a distance metric a method with undefined cases is never best).\n"
)


STATS_LIMITS_PROSE = (
    "What the numbers can say: a verdict cell states when no data at its n could give "
    "a verdict — the smallest attainable Wilcoxon p (2/2^n for n non-zero differences "
    "without ties, e.g. 0.25 at n = 3; lower bounds for tied data), raised by Holm's "
    "adjustment to at least m times the family's smallest, is not below 0.05. A CI from "
    f"fewer than {stats.INDICATIVE_N} cases is marked *indicative*: the resampled means "
    "take few values (at n = 3 the percentile interval is the smallest and largest "
    "difference) and cover the true mean less often than 95 %. The BCa column corrects "
    "the percentile interval for bias and skewness (same resamples, jackknife "
    "acceleration); where BCa is undefined (fewer than 3 cases, all differences equal) "
    "it gives the percentile interval and says so. The verdict and the bold rest on the "
    "Holm p alone, never on a CI.\n"
)
"""Explanation under the statistics heading: what the notes, marks and BCa column mean."""

ORACLE_MARK = " (oracle: uses test labels)"
"""After an oracle method's name in every table: its training recorded ``"oracle":
true`` in ``args.json`` (:attr:`segline.results.MethodResults.oracle`)."""
ORACLE_NOTE = (
    f"Oracle: a method marked *{ORACLE_MARK.strip()}* predicted the test cases with "
    "their ground-truth labels at hand (its `args.json` says `\"oracle\": true`, "
    "e.g. told where the structure lies): an upper bound, not a method one can run on "
    "new cases. It is left out of the statistics and of the CSV's best marks."
)
"""The line under the methods line when some method is an oracle."""


def shown_name(name: str, oracle: bool) -> str:
    """A method's name in a table: followed by :data:`ORACLE_MARK` for an oracle.

    Example:
        >>> shown_name("ebp", True), shown_name("gdl", False)
        ('ebp (oracle: uses test labels)', 'gdl')
    """
    return name + ORACLE_MARK if oracle else name


def conventions(metrics: Sequence[str]) -> str:
    """The conventions section for the reported ``metrics`` (fixed text per metric)."""
    extra = "".join(METRIC_CONVENTIONS[m] for m in metrics if m in METRIC_CONVENTIONS)
    if {INSTANCE_METRIC, "false_positives", "misses"} & set(metrics):
        extra = INSTANCE_CONVENTIONS + extra
    higher = [metric_title(m) for m in metrics if METRIC_INFO[m].higher_is_better]
    lower = [metric_title(m) for m in metrics if not METRIC_INFO[m].higher_is_better]
    which = f"highest {'/'.join(higher)}" + (f", lowest {'/'.join(lower)}" if lower else "")
    return CONVENTIONS_HEAD + extra + BOLD_RULE.format(which=which)
