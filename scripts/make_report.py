"""Write a reproduction report from run records (nac/harness/report.py).

    python scripts/make_report.py emnist --records results/records --out results/reproduction_emnist.md
    python scripts/make_report.py bearings --records results/records --out results/reproduction_bearings.md \
        --time-only results/bearings_time_only_paper.csv --time-only-clean results/bearings_time_only_clean.csv

    python scripts/make_report.py cmapss --records results/records --out results/reproduction_cmapss.md \
        --predictions /work/campaign_out/records --tune-records /work/campaign_out/tune/records

Writes the Markdown and, beside it, ``<out stem>_curves.png`` (validation-accuracy learning curves; bearings:
``<out stem>_predictions.png``, predictions against the truth per model family). The Time-only CSVs (those
paths are the defaults) come from ``scripts/bearing_time_reference.py --out``. C-MAPSS
(nac/harness/report_cmapss.py): one PNG per subset, ``<out stem>_FD00x.png``, from the ``.predictions.npz``
files found under ``--predictions`` (default: beside the records) at each record's path relative to its
records folder; ``--tune-records``: the Optuna trials' records (tag ``tune``) for the tuned-vs-default section.
Needs nac-bench installed (``pip install -e .``).
"""

from nac.harness.report import main

if __name__ == "__main__":
    raise SystemExit(main())
