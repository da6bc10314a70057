"""Person Activity (par): both protocols checked against the raw file read independently.

Uses the shared person-A development copy ($NAC_DATA_ROOT or ../shared/data); skipped without it.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import StratifiedKFold

from nac.data import person_activity as par
from nac.harness.runner import run
from tests.conftest import ROOT, SHARED_DATA

DATA_ROOT = SHARED_DATA
RAW_FILES = sorted((DATA_ROOT / "person_activity").glob("ConfLongDemo_JSI*.txt"))

pytestmark = pytest.mark.skipif(
    not RAW_FILES,
    reason=f"no ConfLongDemo_JSI*.txt under {DATA_ROOT / 'person_activity'} (the shared Person "
    "Activity copy); get it with scripts/download_data.py person_activity",
)

#: the activity order of the authors' PAR_balancer.py (their activity_id), typed here from their script
AUTHORS_ORDER = [
    "walking",
    "falling",
    "lying down",
    "lying",
    "sitting down",
    "sitting",
    "standing up from lying",
    "on all fours",
    "sitting on the ground",
    "standing up from sitting",
    "standing up from sitting on the ground",
]
PAPER = {"name": "paper", "n_folds": 5, "fold": 0, "split_seed": 42}
CLEAN = {"name": "clean", "val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0}


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    """The raw file, parsed here without the module's reader."""
    return pd.read_csv(RAW_FILES[0], header=None, names=["seq", "tag", "ticks", "date", "x", "y", "z", "act"])


@pytest.fixture(scope="module")
def clean():
    return par.build(CLEAN, DATA_ROOT, person="A")


def test_paper_person_absent_names_people_present_and_download(raw):
    people = sorted(set(raw["seq"].str[0]))
    assert "B" not in people
    with pytest.raises(ValueError) as err:
        par.build(PAPER, DATA_ROOT)  # default person B
    message = str(err.value)
    assert f"people present: {people}" in message
    assert "person A only" in message
    assert f"python scripts/download_data.py person_activity --root {DATA_ROOT}" in message
    assert "dataset.builder.person=A" in message


def test_missing_file_names_file_folder_and_command(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        par.build(PAPER, tmp_path, person="A")
    message = str(err.value)
    assert "ConfLongDemo_JSI.txt" in message and str(tmp_path / "person_activity") in message
    assert f"python scripts/download_data.py person_activity --root {tmp_path}" in message


def test_paper_balancing_time_scaling_and_folds(raw):
    person = raw[raw["seq"].str.startswith("A")].reset_index(drop=True)
    counts = person["act"].value_counts()
    n = int(counts.min())
    rows = par.paper_rows(raw.rename(columns={"seq": "sequence", "act": "activity"}), "A")
    # balanced: every present activity exactly n times, the first n of each in file order
    kept = rows["activity"].value_counts()
    assert set(kept.index) == set(counts.index) and (kept == n).all()
    expected_rows = np.sort(np.concatenate([np.flatnonzero(person["act"].to_numpy() == a)[:n] for a in counts.index]))
    assert np.array_equal(np.sort(rows["row"].to_numpy()), expected_rows)
    # in the authors' CSV order: grouped by their activity id, file order within an activity
    authors_id = rows["activity"].map(AUTHORS_ORDER.index).to_numpy()
    assert (np.diff(authors_id) >= 0).all()
    assert all((np.diff(rows["row"].to_numpy()[authors_id == k]) > 0).all() for k in set(authors_id))
    rows = rows.sort_values("row")
    # synthetic time before scaling: index among the person's rows * 0.211 s
    assert np.allclose(rows["time"].to_numpy(), expected_rows * 0.211)
    assert np.allclose(rows[["x", "y", "z"]].to_numpy(), person.loc[expected_rows, ["x", "y", "z"]].to_numpy())

    # standardisation on all kept rows (the paper's leak), recomputed by hand
    raw_features = np.column_stack([person.loc[expected_rows, ["x", "y", "z"]].to_numpy(), expected_rows * 0.211])
    scaled = (raw_features - raw_features.mean(0)) / raw_features.std(0)
    labels = np.array([par.ACTIVITIES.index(a) for a in person.loc[expected_rows, "act"]])
    held_out_sets = []
    for fold in range(5):
        splits = par.build({**PAPER, "fold": fold}, DATA_ROOT, person="A")
        meta = splits.meta
        assert (meta.name, meta.input_dim, meta.output_dim, meta.label_granularity, meta.fold) == (
            "par",
            4,
            11,
            "sequence",
            fold,
        )
        assert torch_equal(splits.val.x, splits.test.x)
        assert splits.train.x.shape[1:] == (1, 4) and splits.test.x.shape[1:] == (1, 4)  # one row per sample
        assert len(splits.train) + len(splits.test) == len(expected_rows)
        # held-out samples are exact rows of the hand-scaled matrix, with their labels
        test_x = splits.test.x[:, 0].numpy().astype(np.float64)
        idx = [int(np.argmin(np.abs(scaled - row).sum(1))) for row in test_x]
        assert np.allclose(scaled[idx], test_x, atol=1e-5)
        assert np.array_equal(labels[idx], splits.test.y.numpy())
        held_out_sets.append(set(idx))
        all_x = np.concatenate([splits.train.x[:, 0].numpy(), test_x])
        assert np.allclose(all_x.mean(0), 0, atol=1e-4) and np.allclose(all_x.std(0), 1, atol=1e-3)
    # the 5 held-out folds partition the rows
    assert sum(len(s) for s in held_out_sets) == len(expected_rows)
    assert set().union(*held_out_sets) == set(range(len(expected_rows)))


def authors_folds(raw: pd.DataFrame, person: str) -> list[set[int]]:
    """The held-out rows (index among the person's rows) of each fold of the authors' PAR_balancer.py +
    PAR_kfold.py recipe, redone with pandas and scikit-learn: balanced CSV grouped by their activity id,
    StratifiedKFold(5, shuffle=True, random_state=42) over it."""
    rows = raw[raw["seq"].str[0] == person].reset_index(drop=True)
    rows = rows.assign(row=np.arange(len(rows)), activity_id=rows["act"].map(AUTHORS_ORDER.index))
    n = rows["activity_id"].value_counts().min()
    balanced = pd.concat([group.iloc[:n] for _, group in rows.groupby("activity_id")], ignore_index=True)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=42)
    return [
        set(balanced["row"].to_numpy()[held_out])
        for _, held_out in folds.split(balanced[["x", "y", "z"]].to_numpy(), balanced["activity_id"].to_numpy())
    ]


def test_paper_folds_are_the_authors(raw):
    """Regression: rows kept in file order gave other folds than the authors' (about 42 % of each
    held-out fold in common on person A); in their CSV's order the 5 held-out folds are theirs."""
    expected = authors_folds(raw, "A")
    for fold in range(5):
        splits = par.build({**PAPER, "fold": fold}, DATA_ROOT, person="A")
        mean, std = splits.meta.extra["scaler_mean"][3], splits.meta.extra["scaler_std"][3]

        def rows_of(split) -> set[int]:
            seconds = split.x[:, 0, 3].double().numpy() * std + mean
            return set(np.rint(seconds / par.PAPER_TIME_STEP).astype(int).tolist())

        assert rows_of(splits.test) == expected[fold]
        assert rows_of(splits.train) == set().union(*expected) - expected[fold]


def torch_equal(a, b) -> bool:
    return a.shape == b.shape and bool((a == b).all())


def test_clean_split_by_recording_and_scaler(clean, raw):
    meta = clean.meta
    assert (meta.input_dim, meta.output_dim, meta.label_granularity, meta.time_unit) == (7, 11, "step", "second")
    recs = meta.extra["recordings"]
    sets = [set(recs[k]) for k in ("train", "val", "test")]
    assert all(sets) and not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert set().union(*sets) == set(raw["seq"])
    for key, split in zip(("train", "val", "test"), (clean.train, clean.val, clean.test)):
        assert {rec for rec, _ in split.windows} <= set(recs[key])
        assert split.x.shape[1:] == (32, 7) and split.t.shape[1:] == (32,) and split.y.shape[1:] == (32,)
        assert bool(split.mask.all())
        assert np.allclose(split.x[..., :4].sum(-1).numpy(), 1.0)  # one-hot tag
    # scaler: fitted on all rows of the training recordings, independently
    train_rows = raw[raw["seq"].isin(recs["train"])][["x", "y", "z"]].to_numpy()
    assert np.allclose(meta.extra["scaler_mean"], train_rows.mean(0))
    assert np.allclose(meta.extra["scaler_std"], train_rows.std(0))
    # windows overlap (stride 16 of 32), so the window mean is near, not exactly, 0 on train
    assert np.allclose(clean.train.x[..., 4:].reshape(-1, 3).mean(0).numpy(), 0, atol=0.05)
    test_mean = clean.test.x[..., 4:].reshape(-1, 3).mean(0).numpy()
    assert np.abs(test_mean).max() > 1e-3


def test_clean_windows_match_raw_rows(clean, raw):
    for split in (clean.train, clean.val, clean.test):
        for i in range(0, len(split), 37):
            rec, start = split.windows[i]
            rows = raw[raw["seq"] == rec].sort_values("ticks", kind="stable")
            ticks = rows["ticks"].to_numpy()
            block = rows.iloc[start : start + 32]
            assert np.array_equal(split.y[i].numpy(), [par.ACTIVITIES.index(a) for a in block["act"]])
            onehot = split.x[i, :, :4].numpy().argmax(-1)
            assert [par.TAGS[k] for k in onehot] == list(block["tag"])
            prev = ticks[start - 1 : start + 31] if start > 0 else np.concatenate([[ticks[0]], ticks[:31]])
            assert np.allclose(split.t[i].numpy(), (block["ticks"].to_numpy() - prev) / 1e7, atol=1e-6)
            assert (split.t[i].numpy() >= 0).all()
            mean, std = np.array(clean.meta.extra["scaler_mean"]), np.array(clean.meta.extra["scaler_std"])
            assert np.allclose(split.x[i, :, 4:].numpy(), (block[["x", "y", "z"]].to_numpy() - mean) / std, atol=1e-5)


def test_split_recordings_rule():
    assert par.split_recordings(["A03", "A01", "A02"], 0.2, 0.2, 0) == (["A02"], ["A01"], ["A03"])
    many = [f"{p}{i:02d}" for p in "ABCDE" for i in range(1, 6)]
    train, val, test = par.split_recordings(many, 0.2, 0.2, 0)
    assert (len(train), len(val), len(test)) == (15, 5, 5) and sorted(train + val + test) == many
    with pytest.raises(ValueError, match="at least 3"):
        par.split_recordings(["A01", "A02"], 0.2, 0.2, 0)


@pytest.mark.parametrize("protocol, model", [("paper", "lstm"), ("clean", "lstm"), ("clean", "nac")])
def test_end_to_end_run(make_cfg, tmp_path, protocol, model):
    """Per-step labels (clean) need no model setting: the runner asks the model for every step."""
    cfg = make_cfg(
        "dataset=par",
        "dataset.builder.person=A",
        f"paths.data_root={DATA_ROOT}",
        f"protocol={protocol}",
        f"model={model}",
    )
    run(cfg)
    (record_file,) = (tmp_path / "records").rglob("*.json")
    record = json.loads(record_file.read_text())
    assert record["status"] == "ok", record.get("error")
    assert record["dataset"] == "par" and record["protocol"] == protocol
    assert record["dataset_meta"]["label_granularity"] == ("step" if protocol == "clean" else "sequence")
    assert 0.0 <= record["test"]["accuracy"] <= 1.0


def test_experiment_configs_compose():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        paper = compose("config", overrides=["experiment=par_paper"], return_hydra_config=True)
        clean_cfg = compose("config", overrides=["experiment=par_clean"], return_hydra_config=True)
    assert paper.protocol.name == "paper" and paper.dataset.name == "par" and paper.trainer.batch_size == 20
    assert paper.hydra.sweeper.params["protocol.fold"] == "0,1,2,3,4"
    assert clean_cfg.protocol.name == "clean" and clean_cfg.dataset.name == "par"


def test_paper_experiment_is_the_authors_script():
    """experiment=par_paper(_a) sets what PAR_exp/PAR_kfold.py does (docs/PROTOCOLS.md 1, `par`)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        sweep = compose("config", overrides=["experiment=par_paper_a"], return_hydra_config=True)
        nac_cfg = compose("config", overrides=["experiment=par_paper_a", "model=nac"])
        lstm_cfg = compose("config", overrides=["experiment=par_paper_a", "model=lstm"])
        person_b = compose("config", overrides=["experiment=par_paper"])
    assert dict(sweep.hydra.sweeper.params) == {
        "model": "nac,nac_official,lstm,cfc,transformer",
        "protocol.fold": "0,1,2,3,4",
    }
    assert nac_cfg.dataset.builder.person == "A" and person_b.dataset.builder.person == "B"
    assert (nac_cfg.protocol.name, nac_cfg.protocol.n_folds, nac_cfg.protocol.split_seed) == ("paper", 5, 42)
    trainer = nac_cfg.trainer
    assert (trainer.epochs, trainer.batch_size, trainer.scheduler) == (100, 20, None)
    assert (trainer.optimizer.lr, trainer.optimizer.weight_decay, trainer.optimizer.eps) == (1e-3, 0.004, 1e-7)
    assert (nac_cfg.dataset.stem.init, nac_cfg.dataset.head.init, nac_cfg.dataset.stem.keep_time) == (
        "keras",
        "keras",
        False,
    )
    assert (
        nac_cfg.model.d_model,
        nac_cfg.model.num_heads,
        nac_cfg.model.mode,
        nac_cfg.model.topk,
        nac_cfg.model.sparsity,
        nac_cfg.model.backbone_units,
    ) == (64, 16, "exact", 8, 0.5, 170)
    assert lstm_cfg.model.time_as_input is False


def test_clean_experiments_sweep_the_campaign():
    """experiment=par_clean sweeps the five campaign models with dataset.causal true; par_clean_noncausal
    the three attention models with it false; both keep par_clean's stem and budget."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        sweeps = {
            name: compose("config", overrides=[f"experiment={name}"], return_hydra_config=True)
            for name in ("par_clean", "par_clean_noncausal")
        }
    assert [
        ("par_clean", model) for model in sweeps["par_clean"].hydra.sweeper.params.model.split(",")
    ] == CLEAN_CAMPAIGN
    assert sweeps["par_clean_noncausal"].hydra.sweeper.params.model == "nac,nac_official,transformer"
    assert (sweeps["par_clean"].dataset.causal, sweeps["par_clean_noncausal"].dataset.causal) == (True, False)
    for cfg in sweeps.values():
        assert cfg.hydra.sweeper.params.seed == "0,1,2" and cfg.protocol.name == "clean"
        assert cfg.dataset.stem.kernel_size == 1
        assert (cfg.trainer.epochs, cfg.trainer.scheduler.patience, cfg.trainer.early_stopping_patience) == (
            100,
            10,
            20,
        )


@pytest.mark.parametrize(
    "model",
    ["nac", "nac_official", "nac_pw", "transformer", "fna", "fna_gauss", "mha", "odeformer", "dot_attention", "cta"],
)
def test_attention_causal_follows_dataset(model):
    """model.causal reads dataset.causal (false where a dataset has none, as digits); cta is always causal."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        got = [
            compose("config", overrides=[f"model={model}", *extra]).model.causal
            for extra in (["dataset=digits"], ["dataset=par"], ["dataset=par", "dataset.causal=true"])
        ]
    assert got == ([True] * 3 if model == "cta" else [False, False, True])


def test_source_files_is_the_file_read(clean):
    assert clean.meta.source_files == [str(RAW_FILES[0].resolve())]


# ----------------------------------------------------------------------------- causality (clean)
#: every model of the clean campaign, with the experiment that runs it (docs/PROTOCOLS.md 1, `par`)
CLEAN_CAMPAIGN = [("par_clean", model) for model in ("lstm", "cfc", "nac", "nac_official", "transformer")]


def clean_predictor(experiment: str, model: str, *overrides: str):
    """The full model (stem, sequence model, head) a clean PAR run of ``experiment`` builds, in float64."""
    import torch
    from hydra import compose, initialize_config_dir

    from nac.harness.runner import build_model

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={experiment}", f"model={model}", *overrides])
    torch.manual_seed(0)
    return build_model(cfg, input_dim=7, output_dim=len(par.ACTIVITIES), per_step=True).double().eval()


def future_changes(predictor, cut: int, seed: int = 0):
    """Outputs (B, L, 11) for a random window and for the same window with every step after ``cut``
    (features and elapsed times) changed."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 20, 7, generator=g, dtype=torch.float64)
    t = 0.01 + 0.2 * torch.rand(3, 20, generator=g, dtype=torch.float64)
    x2, t2 = x.clone(), t.clone()
    x2[:, cut + 1 :] += 2.0 * torch.randn(3, 20 - cut - 1, 7, generator=g, dtype=torch.float64)
    t2[:, cut + 1 :] = 0.01 + 0.5 * torch.rand(3, 20 - cut - 1, generator=g, dtype=torch.float64)
    mask = torch.ones(3, 20, dtype=torch.bool)
    with torch.no_grad():
        return predictor(x, t, mask), predictor(x2, t2, mask)


@pytest.mark.parametrize("experiment,model", CLEAN_CAMPAIGN)
def test_clean_campaign_models_are_causal(experiment, model):
    """The prediction at step i of every model the clean campaign runs (stem, sequence model and head
    as the runner builds them) does not change when the inputs after step i change; the later steps do."""
    predictor = clean_predictor(experiment, model)
    for cut in (0, 3, 9, 18):
        before, after = future_changes(predictor, cut)
        assert before.shape == (3, 20, len(par.ACTIVITIES))
        torch_close = (before[:, : cut + 1] - after[:, : cut + 1]).abs().max().item()
        assert torch_close < 1e-12, f"{model}: step <= {cut} moved by {torch_close:.3g} when later steps changed"
        assert (before[:, cut + 1 :] - after[:, cut + 1 :]).abs().max().item() > 1e-3


@pytest.mark.parametrize("model", ["nac", "nac_official", "transformer"])
def test_non_causal_attention_sees_the_future(model):
    """The check above can fail: the same models left non-causal (par_clean_noncausal, or par_clean with
    dataset.causal=false), or with the dataset's kernel-3 'same' stem, change their early steps when later
    inputs change."""
    for predictor in (
        clean_predictor("par_clean_noncausal", model),
        clean_predictor("par_clean", model, "dataset.causal=false"),
        clean_predictor("par_clean", model, "dataset.stem.kernel_size=3"),
    ):
        before, after = future_changes(predictor, 3)
        assert (before[:, :4] - after[:, :4]).abs().max().item() > 1e-6


def test_clean_tags_say_causal():
    """The table's tag (the experiment's own `tag`, resolved in each job): causal=True for the campaign's models,
    causal=False for the non-causal variant and for an attention model of par_clean with dataset.causal
    false; model.causal follows dataset.causal (recurrent models have none)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        for experiment, model, extra, expected in [
            *[(e, m, [], "causal=True") for e, m in CLEAN_CAMPAIGN],
            *[("par_clean_noncausal", m, [], "causal=False") for m in ("nac", "nac_official", "transformer")],
            ("par_clean", "transformer", ["dataset.causal=false"], "causal=False"),
            ("par_clean", "lstm", ["dataset.causal=false"], "causal=True"),
        ]:
            cfg = compose("config", overrides=[f"experiment={experiment}", f"model={model}", *extra])
            resolved = OmegaConf.to_container(cfg, resolve=True)
            assert resolved["tag"] == expected, (experiment, model, extra)
            recurrent = model in ("lstm", "cfc")
            assert ("causal" in resolved["model"]) is not recurrent
            assert resolved["model"].get("causal", True) is (expected == "causal=True")


@pytest.mark.slow
def test_a_noncausal_sweep_job_records_the_causal_false_tag(tmp_path):
    """End to end through the launcher: a job of par_clean_noncausal records tag causal=False (a tag set
    as a sweep value once came out causal=True in real jobs while model.causal was false)."""
    import json

    from tests.conftest import run_cli

    proc = run_cli(
        "-m",
        "experiment=par_clean_noncausal",
        "model=nac,transformer",
        "seed=0",
        "trainer.epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.latency_samples=2",
        f"paths.data_root={DATA_ROOT}",
        f"paths.output_root={tmp_path}",
        "hydra/launcher=local_parallel",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "records").rglob("*.json") if ".attempt-" not in p.name]
    assert sorted(r["model"] for r in records) == ["nac", "transformer"]  # two jobs: the tag is not resolved once
    for record in records:
        assert record["tag"] == "causal=False" and record["config"]["model"]["causal"] is False
