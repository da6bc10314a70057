"""CarRacing behaviour cloning (docs/PROTOCOLS.md section 2, ``carracing``): frames -> one of 5 actions.

Data: recordings of the scripted pure-pursuit expert (:mod:`nac.driving.expert`) in Gymnasium's
``CarRacing-v3`` with discrete actions (0 no-op, 1 steer right, 2 steer left, 3 gas, 4 brake), made
by ``python scripts/generate_carracing.py`` (:func:`record_expert`). One compressed ``.npz`` holds
``frames`` (N, 96, 96, 3) uint8 (the frame the expert saw), ``actions`` (N,) (the action it then
took), ``episode`` (N,) (index into the per-episode arrays), ``step`` (N,) (the environment step),
and per episode ``seeds``, ``returns``, ``lap_completion`` (fraction of track tiles visited),
``lap_finished`` and ``episode_steps``; plus ``warmup_steps``, ``max_steps`` and the expert's
settings. Frames of the first ``warmup_steps`` steps (default 50: the simulator's zoom-in, during
which every driver gets the scripted action gas, :mod:`nac.driving.closed_loop`) are not recorded.
Frames within an episode are stored consecutively in time order.

Where the recording is read from: ``recording`` when given, else ``<data_root>/carracing/expert.npz``
when that exists, else ``<project root>/datasets/carracing/expert.npz`` (the generator's default).

Samples: a window of ``frames`` consecutive recorded frames of one episode (never crossing an
episode boundary), labelled with the action taken at its last frame; ``frames=1`` (the paper) is
one frame per sample, and with ``frames=k`` an episode's first ``k-1`` frames are only context,
never labels. Items: ``x`` (frames, 3, 96, 96) float in [0, 1] (converted per item from the uint8
store), ``t`` = 1 per frame (one simulator step, 1/50 s), ``mask`` all true, ``y`` the action.

Protocols:
``paper`` -- shuffled stratified k-fold over all samples (``protocol.n_folds`` 5, ``split_seed``
  42); the held-out fold is both validation and test (checkpoint chosen on the reported fold, as
  the NAC authors do). Neighbouring frames of one episode, 1/50 s apart and nearly identical, land
  in train and test, so the figure measures interpolation.
``clean`` -- split by episode (track seed): episodes sorted by seed and shuffled with
  ``protocol.split_seed``; the first ``max(1, round(test_fraction * E))`` are test, the next
  ``max(1, round(val_fraction * E))`` validation, the rest training (needs at least 3 episodes).

``closed_loop_episodes`` > 0 adds ``DatasetSplits.evaluations["closed_loop"]``: the selected model
drives that many new tracks (seeds ``closed_loop_seed_start`` onwards, never in the default
recording) for at most ``closed_loop_max_steps`` steps, with the expert on the same seeds
(:func:`nac.driving.closed_loop.closed_loop_evaluation`). That needs Gymnasium (optional extra
``pip install -e '.[carracing]'``); loading a recording does not.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from nac.data.base import DatasetMeta, DatasetSplits
from nac.data.cache import save_atomic
from nac.data.errors import DataError
from nac.data.protocols import Protocol
from nac.data.splits import group_split, paper_splits
from nac.driving.closed_loop import (
    ZOOM_STEPS,
    ExpertPolicy,
    closed_loop_evaluation,
    frame_to_tensor,
    make_env,
    require_gymnasium,
    run_episode,
)
from nac.driving.expert import ACTIONS

FOLDER = "carracing"
FILENAME = "expert.npz"
GENERATE_COMMAND = "python scripts/generate_carracing.py --episodes 10"
#: per-frame arrays and per-episode arrays of a recording
FRAME_KEYS = ("frames", "actions", "episode", "step")
EPISODE_KEYS = ("seeds", "returns", "lap_completion", "lap_finished", "episode_steps")


def default_recording(data_root: Path | str | None) -> Path:
    """``<data_root>/carracing/expert.npz`` when it exists, else ``<project>/datasets/carracing/expert.npz``."""
    from nac.harness.environment import PROJECT_ROOT

    if data_root is not None:
        candidate = Path(data_root) / FOLDER / FILENAME
        if candidate.is_file():
            return candidate
    return PROJECT_ROOT / "datasets" / FOLDER / FILENAME


def record_expert(
    seeds: Iterable[int], max_steps: int = 1000, warmup_steps: int | None = None, progress: bool = True, expert=None
) -> dict:
    """Drive the expert on each seed and return the recording's arrays (module docstring)."""
    from tqdm.auto import tqdm

    warmup_steps = ZOOM_STEPS if warmup_steps is None else int(warmup_steps)
    seeds = [int(s) for s in seeds]
    policy = ExpertPolicy(expert)
    frames, actions, episode, steps, results = [], [], [], [], []
    env = make_env()
    try:
        bar = tqdm(seeds, desc="expert episodes", unit="episode", disable=not progress)
        for index, seed in enumerate(bar):

            def keep(step, frame, action, index=index):
                frames.append(np.array(frame, dtype=np.uint8, copy=True))
                actions.append(action)
                episode.append(index)
                steps.append(step)

            result = run_episode(policy, seed, env, max_steps, warmup_steps, on_step=keep)
            results.append(result)
            bar.set_postfix(seed=seed, ret=f"{result.episode_return:.1f}", laps=f"{result.lap_completion:.2f}")
    finally:
        env.close()
    if not frames:
        raise ValueError(f"nothing recorded: max_steps={max_steps} must exceed warmup_steps={warmup_steps}")
    return {
        "frames": np.stack(frames),
        "actions": np.asarray(actions, np.int64),
        "episode": np.asarray(episode, np.int32),
        "step": np.asarray(steps, np.int32),
        "seeds": np.asarray(seeds, np.int64),
        "returns": np.asarray([r.episode_return for r in results], np.float64),
        "lap_completion": np.asarray([r.lap_completion for r in results], np.float64),
        "lap_finished": np.asarray([r.lap_finished for r in results], bool),
        "episode_steps": np.asarray([r.steps for r in results], np.int32),
        "warmup_steps": np.int64(warmup_steps),
        "max_steps": np.int64(max_steps),
        "expert": np.asarray(json.dumps(_settings(policy.expert), default=str)),
    }


def _settings(expert) -> dict:
    settings = dataclasses.asdict(expert) if dataclasses.is_dataclass(expert) else {}
    return {"class": type(expert).__name__, **settings}


def save_recording(path: Path | str, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write a compressed ``.npz`` atomically (temporary file, then rename)."""
    return save_atomic(path, arrays, compressed=True)


def _regenerate(path: Path) -> str:
    return f"regenerate it with `{GENERATE_COMMAND} --out {path}`"


def load_recording(path: Path | str) -> dict:
    """A recording's arrays, checked; FileNotFoundError with the generate command when it is missing.

    An empty, truncated or damaged file, a missing array, arrays of different lengths, an action
    outside 0..4 or an episode index without its episode raises a :class:`DataError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"CarRacing recording not found: {path}. Generate expert episodes with `{GENERATE_COMMAND} "
            f"--out {path}` (needs pip install -e '.[carracing]'), or set dataset.builder.recording=<file.npz>"
        )
    try:
        stored = np.load(path, allow_pickle=False)
        arrays = None
        if isinstance(stored, np.lib.npyio.NpzFile):
            with stored:
                arrays = {k: stored[k] for k in stored.files}
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        problem = "is empty (0 bytes)" if path.stat().st_size == 0 else f"cannot be read ({type(err).__name__}: {err})"
        raise DataError(path, None, f"{problem}: a truncated or damaged recording", _regenerate(path)) from None
    if arrays is None:
        raise DataError(
            path, None, "holds one array, not a CarRacing recording (.npz of named arrays)", _regenerate(path)
        )
    missing = [k for k in FRAME_KEYS + EPISODE_KEYS if k not in arrays]
    if missing:
        raise DataError(path, None, f"is not a CarRacing recording: missing arrays {missing}", _regenerate(path))
    check_recording(arrays, path)
    return arrays


def check_recording(arrays: Mapping[str, np.ndarray], path: Path | str) -> None:
    """Shapes, lengths and value ranges of a recording's arrays; a DataError naming the array otherwise."""
    frames = arrays["frames"]
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise DataError(
            path,
            "array frames",
            f"must be uint8 (N, H, W, 3) with N > 0; got {frames.dtype} {frames.shape}",
            _regenerate(path),
        )
    for key in FRAME_KEYS[1:]:
        if arrays[key].shape != (len(frames),):
            raise DataError(
                path,
                f"array {key}",
                f"has shape {arrays[key].shape}, expected ({len(frames)},) like frames",
                _regenerate(path),
            )
    n_episodes = len(arrays["seeds"])
    for key in EPISODE_KEYS[1:]:
        if arrays[key].shape != (n_episodes,):
            raise DataError(
                path,
                f"array {key}",
                f"has shape {arrays[key].shape}, expected ({n_episodes},) like seeds (one value per episode)",
                _regenerate(path),
            )
    for key, high in (("actions", len(ACTIONS)), ("episode", n_episodes)):
        values = arrays[key]
        bad = np.flatnonzero((values < 0) | (values >= high)) if values.dtype.kind in "iu" else np.arange(len(values))
        if len(bad):
            raise DataError(
                path,
                f"array {key}, sample {bad[0]}",
                f"{values[bad[0]]!r} is not an integer in 0..{high - 1}",
                _regenerate(path),
            )


def window_ends(episode: np.ndarray, frames: int) -> np.ndarray:
    """Indices of the frames that end a full window of ``frames`` frames inside one episode."""
    if frames < 1:
        raise ValueError(f"frames={frames} must be at least 1")
    episode = np.asarray(episode)
    starts = np.r_[True, episode[1:] != episode[:-1]]  # first recorded frame of each episode run
    run_start = np.maximum.accumulate(np.where(starts, np.arange(len(episode)), 0))
    position = np.arange(len(episode)) - run_start  # index within the episode
    return np.flatnonzero(position >= frames - 1)


class FrameWindowDataset(Dataset):
    """Windows of consecutive uint8 frames, converted per item to float in [0, 1] (memory stays uint8).

    ``frames_store`` (N, H, W, 3) uint8 is shared, not copied; ``ends`` are the indices of each
    window's last frame; the label is ``actions[end]``.
    """

    def __init__(
        self, frames_store: np.ndarray, actions: np.ndarray, episode: np.ndarray, ends: np.ndarray, window: int
    ):
        self.frames_store, self.actions, self.episode = frames_store, np.asarray(actions), np.asarray(episode)
        self.ends, self.window = np.asarray(ends, dtype=np.int64), int(window)

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def labels(self) -> np.ndarray:
        return self.actions[self.ends]

    @property
    def episodes(self) -> np.ndarray:
        """Episode id of each sample."""
        return self.episode[self.ends]

    def __getitem__(self, i: int) -> dict:
        end = int(self.ends[i])
        block = self.frames_store[end - self.window + 1 : end + 1]  # (L, H, W, 3) uint8
        return {
            "x": frame_to_tensor(block),
            "t": torch.ones(self.window),
            "mask": torch.ones(self.window, dtype=torch.bool),
            "y": torch.tensor(int(self.actions[end]), dtype=torch.long),
        }

    def subset(self, indices) -> FrameWindowDataset:
        return FrameWindowDataset(
            self.frames_store, self.actions, self.episode, self.ends[np.asarray(indices)], self.window
        )


def build(
    protocol: Mapping,
    data_root: Path | str | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
    recording: str | None = None,
    frames: int = 1,
    closed_loop_episodes: int = 0,
    closed_loop_seed_start: int = 1000,
    closed_loop_max_steps: int = 1000,
    limit: int | None = None,
) -> DatasetSplits:
    """CarRacing splits for ``protocol.name`` ``paper`` or ``clean`` (module docstring).

    ``frames``: frames per sample (1 = the paper); ``limit``: quick tests (``paper``: the first
    ``limit`` samples before the folds; ``clean``: the first ``limit`` samples of each split).
    ``seed`` does not change the data (splits follow ``protocol.split_seed``). Nothing is cached:
    loading the compressed recording is the only preprocessing."""
    protocol = Protocol.parse("carracing", protocol)
    evaluations = {}
    if int(closed_loop_episodes) > 0:
        require_gymnasium()  # fail before training, with the install command
    path = Path(recording) if recording else default_recording(data_root)
    arrays = load_recording(path)
    frames = int(frames)
    ends = window_ends(arrays["episode"], frames)
    full = FrameWindowDataset(arrays["frames"], arrays["actions"], arrays["episode"], ends, frames)
    labels, sample_episodes = full.labels, full.episodes
    extra = {}
    if protocol.is_paper:
        keep = np.arange(len(full)) if limit is None else np.arange(min(int(limit), len(full)))
        splits = paper_splits(full.subset(keep), protocol, labels[keep])
    else:  # by episode (track seed)
        ids = [int(e) for e in np.unique(arrays["episode"])]
        train_ids, val_ids, test_ids = group_split(
            ids,
            protocol.val_fraction,
            protocol.test_fraction,
            protocol.split_seed,
            kind="episode",
            hint=f". Record more with `{GENERATE_COMMAND}`",
        )
        parts = []
        for part in (train_ids, val_ids, test_ids):
            idx = np.flatnonzero(np.isin(sample_episodes, part))
            parts.append(full.subset(idx if limit is None else idx[: int(limit)]))
        splits = tuple(parts)
        seeds = arrays["seeds"]
        extra["episodes"] = {"train": train_ids, "val": val_ids, "test": test_ids}
        extra["episode_seeds"] = {k: [int(seeds[i]) for i in v] for k, v in extra["episodes"].items()}
    if int(closed_loop_episodes) > 0:
        loop_seeds = list(range(int(closed_loop_seed_start), int(closed_loop_seed_start) + int(closed_loop_episodes)))
        evaluations["closed_loop"] = closed_loop_evaluation(
            loop_seeds, int(closed_loop_max_steps), frames, int(arrays.get("warmup_steps", 50))
        )
        extra["closed_loop_seeds"] = loop_seeds
    counts = np.bincount(labels, minlength=len(ACTIONS))
    extra.update(
        recording=str(path),
        frames=frames,
        n_frames=int(len(arrays["frames"])),
        n_episodes=int(len(arrays["seeds"])),
        recorded_seeds=[int(s) for s in arrays["seeds"]],
        expert_mean_return=float(np.mean(arrays["returns"])),
        expert_lap_completion=float(np.mean(arrays["lap_completion"])),
        warmup_steps=int(arrays.get("warmup_steps", 50)),
        labels=list(ACTIONS),
        action_counts={a: int(c) for a, c in zip(ACTIONS, counts)},
        limit=limit,
    )
    meta = DatasetMeta(
        name="carracing",
        input_dim=int(arrays["frames"].shape[-1]),
        output_dim=len(ACTIONS),
        task="classification",
        metric="accuracy",
        metric_mode="max",
        protocol=protocol.name,
        time_unit="simulator step (1/50 s)",
        fold=protocol.record_fold,
        source_files=[str(path.resolve())],
        extra=extra,
    )
    return DatasetSplits(*splits, meta=meta, evaluations=evaluations)
