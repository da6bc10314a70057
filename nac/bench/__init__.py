"""Measurement for the project's speed work: one timer, one memory probe, one fresh-process runner.

* :mod:`nac.bench.timing` -- the timer: warm-up calls, then each timed call on torch.utils.benchmark's
  clock (which synchronises an accelerator), summarised as a ``torch.utils.benchmark.Measurement``.
* :mod:`nac.bench.probe` -- the memory probe: the memory one piece of work adds, from
  :class:`nac.harness.memory.PeakMemory` (peak RSS or CUDA peak) minus what was held before it.
* :mod:`nac.bench.fresh` -- the fresh-process runner: call a function in a new Python process
  (peak RSS is a high-water mark of the whole process) and get its JSON result back.
* :mod:`nac.bench.load` -- the CPU time other processes used meanwhile (is the machine quiet?).
* :mod:`nac.bench.workloads` -- what is timed: a NAC / LSTM / MultiheadAttention training step, and
  one long-sequence forward + backward with its memory increment.
* :mod:`nac.bench.epoch` -- one training epoch of an experiment, run by ``nac-bench`` itself.
* :mod:`nac.bench.report` -- rows, the printed table and the ``results/`` files with provenance.
* :mod:`nac.bench.speed` -- the speed suite (issue 12): ``python -m nac.bench speed``.
"""
