"""NAC training speed and memory: issue 12's benchmark, one command for every figure.

A thin entry point to :mod:`nac.bench.speed` (``python -m nac.bench speed`` is the same). Run it
from the repository root on a quiet machine::

    . .venv/bin/activate
    python scripts/bench_nac.py                            # every part -> results/speed_<date>_cpu2t.{md,csv}
    python scripts/bench_nac.py --parts step,long          # a subset (files go to runs/bench/)
    python scripts/bench_nac.py --quick --out-dir /tmp/b   # a smoke run of seconds, tiny shapes, no verdicts
    python scripts/bench_nac.py --device cuda

It times, with issue 12's targets and PASS/FAIL: a NAC training step at the paper's E-MNIST
settings (T = 11 and 256, both variants), one long-sequence forward + backward with its memory
increment (T = 1,024, 4,096, 16,384, each in a fresh process), and one training epoch of E-MNIST
(both variants) and of the bearings ``paper`` experiment; plus a torch ``nn.LSTM`` and
``nn.MultiheadAttention`` step at the step shapes, to which every figure is also given as a ratio.
It prints one table with the CPU time other processes used during each figure and writes it as
Markdown and CSV with the command, commit, date, torch version, CPU model and thread count.
``python scripts/bench_nac.py --help`` lists the options.

Older options still work: ``--part memory`` is ``--parts long`` (``--lengths`` its T values),
``--part speed`` is ``--parts step``, ``--out FILE.csv`` names the CSV (the .md goes beside it).
"""

from __future__ import annotations

import sys

from nac.bench.speed import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="scripts/bench_nac.py"))
