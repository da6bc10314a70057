"""CarRacing (carracing): a short generated recording, the loader, both protocols, frame windows,
the CNN stem, closed-loop driving and one end-to-end run. Gymnasium (optional extra) is needed to
generate; the tests that need it skip without it, the missing-gymnasium message is tested anyway."""

from __future__ import annotations

import builtins
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nac.data import carracing as cr
from nac.driving.expert import PurePursuitExpert
from nac.models.frame_cnn import FrameCNNStem

PAPER = {"name": "paper", "n_folds": 5, "fold": 0, "split_seed": 42}
CLEAN = {"name": "clean", "val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0}
SEEDS = [0, 1, 2]
MAX_STEPS, WARMUP = 60, 5


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """Three 60-step expert episodes (5 warm-up steps); a low speed cap mixes gas, no-op and brake."""
    pytest.importorskip("gymnasium", reason="needs the optional extra: pip install -e '.[carracing]'")
    arrays = cr.record_expert(
        SEEDS,
        max_steps=MAX_STEPS,
        warmup_steps=WARMUP,
        progress=False,
        expert=PurePursuitExpert(max_speed=12.0, brake_margin=2.0),
    )
    return cr.save_recording(tmp_path_factory.mktemp("carracing") / "short.npz", arrays)


@pytest.fixture(scope="module")
def arrays(recording) -> dict:
    with np.load(recording) as stored:
        return {k: stored[k] for k in stored.files}


def test_recording_schema(arrays):
    frames = arrays["frames"]
    n = (MAX_STEPS - WARMUP) * len(SEEDS)  # no episode ends early at this speed
    assert frames.dtype == np.uint8 and frames.shape == (n, 96, 96, 3)
    assert arrays["actions"].shape == (n,) and set(np.unique(arrays["actions"])) <= set(range(5))
    assert len(np.unique(arrays["actions"])) >= 2  # not a single class
    assert np.array_equal(arrays["episode"], np.repeat(np.arange(3), MAX_STEPS - WARMUP))
    assert np.array_equal(arrays["step"], np.tile(np.arange(WARMUP, MAX_STEPS), 3))
    assert np.array_equal(arrays["seeds"], SEEDS) and np.array_equal(arrays["episode_steps"], [MAX_STEPS] * 3)
    assert np.all(arrays["lap_completion"] > 0) and np.all(arrays["lap_completion"] < 0.5)
    assert not arrays["lap_finished"].any() and np.all(np.isfinite(arrays["returns"]))
    assert int(arrays["warmup_steps"]) == WARMUP
    assert json.loads(str(arrays["expert"]))["max_speed"] == 12.0


def test_loader_items_are_scaled_frames(recording, arrays):
    splits = cr.build(PAPER, None, recording=str(recording))
    assert splits.meta.input_dim == 3 and splits.meta.output_dim == 5 and splits.meta.protocol == "paper"
    assert len(splits.train) + len(splits.test) == len(arrays["frames"])
    assert splits.val is not None and np.array_equal(splits.val.ends, splits.test.ends)  # the paper's selection
    item = splits.train[3]
    end = splits.train.ends[3]
    assert item["x"].shape == (1, 3, 96, 96) and item["x"].dtype == torch.float32
    expected = torch.from_numpy(arrays["frames"][end]).permute(2, 0, 1).float() / 255
    assert torch.equal(item["x"][0], expected)
    assert 0.0 <= float(item["x"].min()) and float(item["x"].max()) <= 1.0
    assert item["t"].tolist() == [1.0] and item["mask"].tolist() == [True]
    assert item["y"].dtype == torch.long and int(item["y"]) == int(arrays["actions"][end])
    assert splits.train.frames_store is splits.test.frames_store  # one uint8 store, never copied


def test_clean_split_has_disjoint_episodes(recording, arrays):
    splits = cr.build(CLEAN, None, recording=str(recording))
    parts = [set(np.unique(s.episodes)) for s in (splits.train, splits.val, splits.test)]
    assert all(len(p) == 1 for p in parts)  # 3 episodes: one each
    assert set.union(*parts) == {0, 1, 2} and sum(len(p) for p in parts) == 3
    assert sum(len(s) for s in (splits.train, splits.val, splits.test)) == len(arrays["frames"])
    episodes = splits.meta.extra["episodes"]
    assert [sorted(p) for p in parts] == [episodes["train"], episodes["val"], episodes["test"]]
    limited = cr.build(CLEAN, None, recording=str(recording), limit=7)
    assert len(limited.train) == len(limited.val) == len(limited.test) == 7


def test_paper_folds_partition_and_are_stratified(recording, arrays):
    labels = arrays["actions"]
    held_out = []
    for fold in range(5):
        splits = cr.build({**PAPER, "fold": fold}, None, recording=str(recording))
        assert not set(splits.train.ends) & set(splits.test.ends)
        held_out.append(splits.test.ends)
        fold_counts = np.bincount(labels[splits.test.ends], minlength=5)
        assert np.all(np.abs(fold_counts - np.bincount(labels, minlength=5) / 5) <= 1)
    assert np.array_equal(np.sort(np.concatenate(held_out)), np.arange(len(labels)))


def test_frame_windows_never_cross_episodes(recording, arrays):
    frames = 4
    splits = cr.build(PAPER, None, recording=str(recording), frames=frames)
    ends = np.sort(np.concatenate([splits.train.ends, splits.test.ends]))
    assert len(ends) == 3 * (MAX_STEPS - WARMUP - (frames - 1))
    for end in ends:
        window = np.arange(end - frames + 1, end + 1)
        assert len(set(arrays["episode"][window])) == 1
        assert np.array_equal(np.diff(arrays["step"][window]), [1] * (frames - 1))
    item = splits.train[0]
    assert item["x"].shape == (frames, 3, 96, 96) and item["t"].shape == (frames,)
    first = splits.train.ends[0]
    assert torch.equal(item["x"][-1], torch.from_numpy(arrays["frames"][first]).permute(2, 0, 1).float() / 255)
    assert np.array_equal(cr.window_ends(np.array([0, 0, 0, 1, 1, 2, 2, 2, 2]), 3), [2, 7, 8])


def test_cnn_stem_gives_2430_features_and_keeps_time():
    stem = FrameCNNStem(3).eval()
    assert stem.output_dim == 2430
    frames = torch.randint(0, 256, (2, 3, 3, 96, 96), dtype=torch.uint8)
    t, mask = torch.rand(2, 3), torch.tensor([[True, True, False]] * 2)
    out, t_out, mask_out = stem(frames, t, mask)
    assert out.shape == (2, 3, 2430) and t_out is t and mask_out is mask
    assert torch.allclose(out, stem(frames.float() / 255)[0])  # uint8 is scaled by 1/255
    assert torch.allclose(out[:, 1], stem(frames[:, 1:2])[0][:, 0], atol=1e-6)  # per frame
    with pytest.raises(ValueError, match=r"\(B, L, C, H, W\)"):
        stem(torch.zeros(2, 3, 96, 96))


def test_model_policy_keeps_a_frame_buffer():
    from nac.driving.closed_loop import ModelPolicy

    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x, t, mask):
            seen.append(x.clone())
            return torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0]])

    policy = ModelPolicy(Spy(), "cpu", frames=3)
    policy.reset()
    frames = [np.full((96, 96, 3), v, np.uint8) for v in (0, 51, 102)]
    actions = [policy.act(f) for f in frames]
    assert actions == [3, 3, 3]
    assert seen[0].shape == (1, 3, 3, 96, 96) and torch.all(seen[0] == 0)  # filled with the first frame
    assert [round(float(seen[2][0, k].mean()), 3) for k in range(3)] == [0.0, 0.2, 0.4]


def test_missing_recording_names_the_generate_command(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        cr.build(CLEAN, tmp_path, recording=str(tmp_path / "none.npz"))
    assert "python scripts/generate_carracing.py" in str(err.value) and str(tmp_path / "none.npz") in str(err.value)


def test_default_recording_prefers_the_data_root(tmp_path):
    from nac.harness.environment import PROJECT_ROOT

    assert cr.default_recording(tmp_path) == PROJECT_ROOT / "datasets" / "carracing" / "expert.npz"
    (tmp_path / "carracing").mkdir()
    (tmp_path / "carracing" / "expert.npz").write_bytes(b"")
    assert cr.default_recording(tmp_path) == tmp_path / "carracing" / "expert.npz"


def test_missing_gymnasium_says_how_to_install(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_gymnasium(name, *args, **kwargs):
        if name == "gymnasium" or name.startswith("gymnasium."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gymnasium)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[carracing\]'"):
        cr.build(CLEAN, tmp_path, recording=str(tmp_path / "x.npz"), closed_loop_episodes=1)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[carracing\]'"):
        cr.record_expert([0], max_steps=10, progress=False)


def test_one_epoch_run_with_closed_loop(recording, make_cfg):
    from nac.harness.runner import run

    cfg = make_cfg(
        "dataset=carracing",
        "protocol=clean",
        "model=nac",
        "seed=0",
        "threads=1",
        f"dataset.builder.recording={recording}",
        "dataset.builder.closed_loop_episodes=1",
        f"dataset.builder.closed_loop_max_steps={WARMUP + 10}",
        "trainer.epochs=1",
    )
    value = run(cfg)
    assert 0.0 <= value <= 1.0
    record = json.loads(next(Path(cfg.paths.records_dir).rglob("*.json")).read_text())
    assert record["status"] == "ok" and record["dataset"] == "carracing" and record["epochs_run"] == 1
    loop = record["evaluations"]["closed_loop"]
    assert loop["episodes"] == 1 and loop["mean_steps"] == WARMUP + 10
    assert math.isfinite(loop["mean_return"]) and 0 < loop["lap_completion"] < 0.2
    assert math.isfinite(loop["expert_mean_return"]) and record["dataset_meta"]["extra"]["closed_loop_seeds"] == [1000]


def write_synthetic_recording(path: Path, episodes: int = 3, per_episode: int = 10) -> Path:
    """A recording without Gymnasium: flat-coloured frames, actions cycling 0..4 (6 per class for 3 x 10)."""
    n = episodes * per_episode
    frames = np.broadcast_to((np.arange(n, dtype=np.uint8) * 7)[:, None, None, None], (n, 96, 96, 3)).copy()
    arrays = {
        "frames": frames,
        "actions": np.arange(n, dtype=np.int64) % 5,
        "episode": np.repeat(np.arange(episodes), per_episode).astype(np.int32),
        "step": np.tile(np.arange(per_episode), episodes).astype(np.int32),
        "seeds": np.arange(episodes, dtype=np.int64),
        "returns": np.zeros(episodes),
        "lap_completion": np.zeros(episodes),
        "lap_finished": np.zeros(episodes, bool),
        "episode_steps": np.full(episodes, per_episode, np.int32),
        "warmup_steps": np.int64(0),
        "max_steps": np.int64(per_episode),
    }
    return cr.save_recording(path, arrays)


def test_source_files_is_the_recording(tmp_path):
    path = write_synthetic_recording(tmp_path / "rec.npz")
    for protocol in (PAPER, CLEAN):
        splits = cr.build(protocol, None, recording=str(path))
        assert splits.meta.source_files == [str(path.resolve())]
    assert len(splits.train) + len(splits.val) + len(splits.test) == 30
