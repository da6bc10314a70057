#!/usr/bin/env python
"""Record CarRacing behaviour-cloning data: the pure-pursuit expert driving seeded episodes.

    python scripts/generate_carracing.py --episodes 10            # seeds 0-9 -> datasets/carracing/expert.npz
    python scripts/generate_carracing.py --episodes 3 --max-steps 300 --out /tmp/short.npz

Writes one compressed .npz (frames uint8 (N, 96, 96, 3), actions, episode ids, steps, and per
episode seeds, returns, lap completion; see nac/data/carracing.py) and prints the expert's mean
return. Needs Gymnasium with Box2D: pip install -e '.[carracing]'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nac.data.carracing import FILENAME, FOLDER, record_expert, save_recording
from nac.driving.closed_loop import ZOOM_STEPS
from nac.harness.environment import PROJECT_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10, help="number of episodes (default 10)")
    parser.add_argument("--seed-start", type=int, default=0, help="first track seed; episodes use consecutive seeds")
    parser.add_argument(
        "--max-steps", type=int, default=1000, help="steps per episode at most (CarRacing stops at 1000)"
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=ZOOM_STEPS,
        help=f"scripted gas steps at the start, not recorded (default {ZOOM_STEPS}: the zoom-in)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=PROJECT_ROOT / "datasets" / FOLDER / FILENAME,
        help="output .npz (default datasets/carracing/expert.npz)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    try:
        seeds = range(args.seed_start, args.seed_start + args.episodes)
        arrays = record_expert(seeds, args.max_steps, args.warmup_steps, progress=not args.no_progress)
    except ImportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    path = save_recording(args.out, arrays)
    returns, completion = arrays["returns"], arrays["lap_completion"]
    print(
        f"wrote {path}: {len(arrays['frames'])} frames from {len(returns)} episodes "
        f"({path.stat().st_size / 1e6:.1f} MB)"
    )
    for seed, ret, comp, done, steps in zip(
        arrays["seeds"], returns, completion, arrays["lap_finished"], arrays["episode_steps"]
    ):
        print(f"  seed {seed}: return {ret:.1f}, lap completion {comp:.3f}, lap finished {bool(done)}, {steps} steps")
    counts = {
        name: int((arrays["actions"] == i).sum()) for i, name in enumerate(("noop", "right", "left", "gas", "brake"))
    }
    print(
        f"expert mean return {returns.mean():.1f} ± {returns.std():.1f}, mean lap completion "
        f"{completion.mean():.3f}, laps finished {arrays['lap_finished'].mean():.0%}; actions {counts}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
