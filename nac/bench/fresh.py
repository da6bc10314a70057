"""The fresh-process runner: run a command, or call a function, in a new Python process.

A process's peak RSS is a high-water mark of its whole life, and a long-sequence pass leaves the
allocator holding memory, so each memory point runs in a process of its own. The child side is this
module: ``python -m nac.bench.fresh <module:function> '<JSON keyword arguments>'`` calls the function
and prints its JSON-able result on one line after :data:`MARKER`.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nac.harness.environment import PROJECT_ROOT

MARKER = "NAC_BENCH_RESULT "


@dataclass(frozen=True)
class Finished:
    """A finished child: exit code (None: timed out), output, and wall seconds."""

    returncode: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def result(self) -> dict[str, Any] | None:
        """The JSON the child printed after :data:`MARKER`, if any."""
        for line in self.stdout.splitlines():
            if line.startswith(MARKER):
                return json.loads(line[len(MARKER) :])
        return None

    def why(self) -> str:
        """One line saying why the child gave no result."""
        if self.returncode is None:
            return f"timed out after {self.seconds:.0f} s"
        lines = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return f"exit code {self.returncode}: {lines[-1] if lines else 'no output (killed?)'}"


def run_command(argv: Sequence[str], *, timeout: float | None = None, env: dict[str, str] | None = None) -> Finished:
    """Run ``argv`` from the project root with the project importable; never raises on failure."""
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), environ.get("PYTHONPATH")]))
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            list(argv), cwd=PROJECT_ROOT, env=environ, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as err:
        out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        return Finished(None, out, "", time.perf_counter() - start)
    return Finished(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start)


def call_fresh(target: str, kwargs: dict[str, Any], *, timeout: float | None = None) -> Finished:
    """Call ``target`` (``"package.module:function"``) with ``kwargs`` in a fresh Python process."""
    return run_command([sys.executable, "-m", "nac.bench.fresh", target, json.dumps(kwargs)], timeout=timeout)


def _main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or ":" not in argv[0]:
        print("usage: python -m nac.bench.fresh package.module:function '<JSON keyword arguments>'", file=sys.stderr)
        return 2
    module, _, name = argv[0].partition(":")
    function = getattr(importlib.import_module(module), name)
    print(MARKER + json.dumps(function(**json.loads(argv[1]))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
