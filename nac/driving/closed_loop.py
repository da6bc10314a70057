"""Closed-loop driving in Gymnasium's ``CarRacing-v3`` (discrete actions), for the expert and for a
trained model.

One episode: ``env.reset(seed=seed)``; for the first ``warmup_steps`` steps (default 50, the
simulator's 1-second zoom-in, whose frames look unlike the rest) every driver gets the same
scripted action, gas; after that the driver chooses each action from the current state, until the
episode terminates (lap finished, or the car leaves the playfield), is truncated (the environment's
1000-step limit) or reaches ``max_steps`` steps. Reported per episode: the return (the environment's
reward summed over all steps, warm-up included: +1000/N per new track tile, -0.1 per step, -100 for
leaving the playfield), the lap completion (fraction of the N track tiles visited) and whether the
environment flagged the lap finished (``info["lap_finished"]``: 95 % of the tiles visited and back on
the start tile).

A trained :class:`~nac.models.predictor.SequencePredictor` drives through :class:`ModelPolicy`:
each step the frame (96x96x3 uint8) is scaled to [0, 1], appended to a buffer of the last
``frames`` frames (at the start of the episode the buffer is filled with copies of the first frame)
and the action is the argmax of the model's 5 logits (``t`` = 1 per step, mask all true, as in
training). Gymnasium is imported lazily (:func:`require_gymnasium`); it is an optional extra.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from nac.driving.expert import GAS, PurePursuitExpert

ENV_ID = "CarRacing-v3"
#: steps of CarRacing's zoom-in at the start of an episode (t < 1 s at 50 FPS)
ZOOM_STEPS = 50
INSTALL_HINT = (
    "CarRacing needs Gymnasium with Box2D, an optional extra: pip install -e '.[carracing]' "
    "(or pip install 'gymnasium[box2d]')"
)


def require_gymnasium():
    """Import gymnasium, or raise an ImportError that says how to install it."""
    try:
        import gymnasium
        import gymnasium.envs.box2d  # noqa: F401  (fails without the Box2D wheel)
    except ImportError as err:
        raise ImportError(f"{INSTALL_HINT} ({err})") from err
    return gymnasium


def make_env():
    """A headless ``CarRacing-v3`` with the 5 discrete actions."""
    gymnasium = require_gymnasium()
    return gymnasium.make(ENV_ID, continuous=False)


@dataclass
class EpisodeResult:
    seed: int
    episode_return: float
    steps: int
    lap_completion: float
    lap_finished: bool


class ExpertPolicy:
    """The pure-pursuit expert as a policy (reads the simulator state, ignores the frame)."""

    def __init__(self, expert: PurePursuitExpert | None = None):
        self.expert = expert or PurePursuitExpert()

    def reset(self) -> None:
        self.expert.reset()

    def act(self, frame: np.ndarray, env) -> int:
        return self.expert.act(env)


def frame_to_tensor(frame: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float in [0, 1]: the one conversion for training and driving."""
    return torch.from_numpy(np.ascontiguousarray(frame)).movedim(-1, -3).float().div_(255.0)


class ModelPolicy:
    """A trained frame classifier as a policy: argmax over its logits for the last ``frames`` frames."""

    def __init__(self, model: torch.nn.Module, device: torch.device | str = "cpu", frames: int = 1):
        if frames < 1:
            raise ValueError(f"frames={frames} must be at least 1")
        self.model, self.device, self.frames = model, torch.device(device), int(frames)
        self.buffer: deque[torch.Tensor] = deque(maxlen=self.frames)
        self.t = torch.ones(1, self.frames, device=self.device)
        self.mask = torch.ones(1, self.frames, dtype=torch.bool, device=self.device)

    def reset(self) -> None:
        self.buffer.clear()

    @torch.no_grad()
    def act(self, frame: np.ndarray, env=None) -> int:
        current = frame_to_tensor(frame).to(self.device)  # each frame is moved to the device once
        if not self.buffer:
            self.buffer.extend([current] * self.frames)
        else:
            self.buffer.append(current)
        x = torch.stack(list(self.buffer))[None]  # (1, frames, 3, H, W)
        logits = self.model(x, self.t, self.mask)
        return int(logits.reshape(-1, logits.shape[-1])[-1].argmax())


def run_episode(
    policy,
    seed: int,
    env,
    max_steps: int = 1000,
    warmup_steps: int = ZOOM_STEPS,
    on_step: Callable[[int, np.ndarray, int], None] | None = None,
) -> EpisodeResult:
    """Drive one seeded episode in ``env`` (module docstring). ``on_step(step, frame, action)`` is called
    for every step after the warm-up with the frame the policy saw and the action it chose."""
    frame, _ = env.reset(seed=int(seed))
    policy.reset()
    total, steps, finished = 0.0, 0, False
    for step in range(int(max_steps)):
        if step < warmup_steps:
            action = GAS
        else:
            action = int(policy.act(frame, env))
            if on_step is not None:
                on_step(step, frame, action)
        frame, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        steps = step + 1
        if terminated or truncated:
            finished = bool(info.get("lap_finished", False))
            break
    unwrapped = env.unwrapped
    completion = unwrapped.tile_visited_count / max(1, len(unwrapped.track))
    return EpisodeResult(int(seed), total, steps, float(completion), finished)


def summarise(results: list[EpisodeResult], prefix: str = "") -> dict:
    """Mean and std of the return, mean lap completion, share of finished laps (numbers only)."""
    returns = np.array([r.episode_return for r in results], dtype=np.float64)
    return {
        f"{prefix}mean_return": float(returns.mean()) if len(returns) else math.nan,
        f"{prefix}std_return": float(returns.std()) if len(returns) else math.nan,
        f"{prefix}lap_completion": float(np.mean([r.lap_completion for r in results])) if results else math.nan,
        f"{prefix}laps_finished": float(np.mean([r.lap_finished for r in results])) if results else math.nan,
        f"{prefix}mean_steps": float(np.mean([r.steps for r in results])) if results else math.nan,
    }


def drive(policy, seeds: Iterable[int], max_steps: int = 1000, warmup_steps: int = ZOOM_STEPS) -> list[EpisodeResult]:
    """One episode per seed in one environment."""
    env = make_env()
    try:
        return [run_episode(policy, seed, env, max_steps, warmup_steps) for seed in seeds]
    finally:
        env.close()


@functools.lru_cache(maxsize=8)
def expert_figures(seeds: tuple[int, ...], max_steps: int, warmup_steps: int) -> dict:
    """The default expert's :func:`summarise` figures (``expert_`` prefix), computed once per process
    for given seeds (the simulator is deterministic, so runs of a multirun share them)."""
    return summarise(drive(ExpertPolicy(), seeds, max_steps, warmup_steps), prefix="expert_")


def closed_loop_evaluation(
    seeds: Iterable[int],
    max_steps: int = 1000,
    frames: int = 1,
    warmup_steps: int = ZOOM_STEPS,
    include_expert: bool = True,
):
    """An evaluation for :class:`~nac.data.base.DatasetSplits`: ``fn(model, device) -> figures``.

    Figures: ``mean_return``, ``std_return``, ``lap_completion``, ``laps_finished``, ``mean_steps``,
    ``episodes`` for the model, and the same with an ``expert_`` prefix on the same seeds when
    ``include_expert``."""
    seeds = [int(s) for s in seeds]

    def evaluate(model: torch.nn.Module, device: torch.device) -> dict:
        was_training = model.training
        model.eval()
        try:
            figures = summarise(drive(ModelPolicy(model, device, frames), seeds, max_steps, warmup_steps))
        finally:
            model.train(was_training)
        figures["episodes"] = len(seeds)
        if include_expert:
            figures.update(expert_figures(tuple(seeds), int(max_steps), int(warmup_steps)))
        return figures

    return evaluate


__all__ = [
    "EpisodeResult",
    "ExpertPolicy",
    "ModelPolicy",
    "closed_loop_evaluation",
    "drive",
    "expert_figures",
    "make_env",
    "require_gymnasium",
    "run_episode",
    "summarise",
]
