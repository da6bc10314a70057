"""Write a reproduction report from run records (nac/harness/report.py).

    python scripts/make_report.py emnist --records results/records --out results/reproduction_emnist.md

Writes the Markdown and, beside it, ``<out stem>_curves.png`` (validation-accuracy learning curves).
Needs nac-bench installed (``pip install -e .``).
"""

from nac.harness.report import main

if __name__ == "__main__":
    raise SystemExit(main())
