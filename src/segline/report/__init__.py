"""The results report: one markdown page and CSVs comparing the methods of a dataset.

Sections of the page (``--out``):

* **Results**: per method (and per foreground class when there are several, plus
  their mean) the best epoch, the epochs trained, the validation Dice at the best
  epoch (the selection criterion) and, on the held-out test cases, mean ± sd of each
  test metric (``--metrics``, default Dice, HD95 and ASSD in mm; also clDice, MIP
  Dice, HD: :data:`segline.results.METRIC_INFO`) with the number of cases and of
  **undefined** cases (NaN: never dropped silently). With seeds (training folders
  ``<method>/seed<k>``, ``SEEDS`` in make/common.mk): one row per seed, then the
  method's pooled row (per case the mean over its seeds), and a table of mean ± sd
  over seeds of each seed's mean over cases.
* **Statistics** against a reference method (``--stat-reference``): per compared
  method and metric, the mean paired difference (method − reference) over the test
  cases with a bootstrap 95 % CI, the Wilcoxon signed-rank p, the Holm-adjusted p
  (across the compared methods, per metric), a verdict and n (:mod:`segline.stats`).
  Undefined distances (HD95/ASSD/HD with exactly one empty mask) count as the worst
  possible value there: the case's field-of-view diagonal in mm, from the case store
  (``--cases``); without it the distance statistics are not computed.
* **Per case**: Dice and HD95 of each method per test case (seeds: their mean).
* **Configuration and provenance** (:mod:`segline.report.config`), the **plots**
  (``--plot NAME``, image links relative to the page) and the **conventions**.

Instance tasks (vertebrae: test rows with ``id_rate``, :mod:`segline.metrics.instances`)
report only the class of those rows (``spine``: one row per case,
:func:`segline.results.instance_classes`), never the per-vertebra classes most cases
lack; ``--metrics dice,assd,id_rate,false_positives,misses`` (false positives and
misses are counts per case, lower is better).

Oracle methods (``args.json`` ``"oracle": true``: the test predictions used the test
cases' labels, :attr:`segline.results.MethodResults.oracle`) are marked
``(oracle: uses test labels)`` in every table, with a line explaining the mark, and left
out of the statistics (the section names them; ``--stat-reference`` refuses one) and of
the CSV's ``best_*`` marks.

``--reference METHOD`` (vessels: the fully supervised ``full``) adds each method's
mean of every higher-is-better metric as a percentage of that method's: columns
``<metric> / METHOD`` in markdown, ``<metric>_fraction_of_METHOD`` in the CSV. It is
unrelated to ``--stat-reference``.

The CSV (``--csv``) has one row per table row of the results (method or method/seed ×
class) with the statistics on the rows they concern; ``--cases-csv`` writes every
per-case value (long format). Numbers are read with :mod:`segline.results` (same
conventions as the plots). No dates or host names: same inputs, same bytes.

Modules: :mod:`~segline.report.build` (the command line, the page's assembly),
:mod:`~segline.report.model` (per-case tables and results rows),
:mod:`~segline.report.tables` (markdown tables), :mod:`~segline.report.statistics`
(the statistics section, :mod:`segline.stats`), :mod:`~segline.report.selection`
(how the best epoch was selected), :mod:`~segline.report.csvout` (the CSVs),
:mod:`~segline.report.config` (configuration and provenance),
:mod:`~segline.report.text` (the conventions and other fixed prose). Usage:
:mod:`segline.report.build`.
"""

from segline.report.build import main

__all__ = ["main"]
