"""Tables: groups by settings, code and data; sample std and t intervals; the paper's figure only where
like for like; paired comparisons; the Markdown, the make_tables script and the sweep table.

References are independent of the code under test: hand-computed numbers, t quantiles from printed
tables, scipy.stats.ttest_rel for paired intervals and the shipped experiment configs for the paper's
setups."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from scipy import stats

from nac.harness.callbacks import write_sweep_table
from nac.harness.records import write_json_atomic
from nac.harness.tables import (
    LEGEND,
    pair_units,
    paired_comparison,
    pairing_context,
    paper_gaps,
    records_frame,
    short_commit,
    summary_table,
    to_markdown,
)
from tests.conftest import CONFIGS, ROOT, model_choice

#: two-sided 95 % Student-t quantiles t_{0.975, df}, from a printed table
T975 = {1: 12.706, 2: 4.303, 4: 2.776}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _rec(
    model,
    seed,
    acc,
    status="ok",
    dataset="d",
    protocol="clean",
    fold=None,
    group="g",
    commit=COMMIT,
    digest="feedbeefcafe0001",
    config=None,
    mode="max",
):
    return {
        "dataset": dataset,
        "protocol": protocol,
        "model": model,
        "seed": seed,
        "fold": fold,
        "status": status,
        "metric": "accuracy",
        "metric_mode": mode,
        "test": {"accuracy": acc},
        "val": {"accuracy": acc},
        "group_hash": group,
        "git_commit": commit,
        "data": {"digest": digest, "files": {}},
        "config": config if config is not None else {"protocol": {"n_folds": 5}},
        "parameters_sequence_model": 10,
        "train_time_per_epoch_s": 1.0,
        "latency_per_sample_s": 0.001,
        "peak_memory_mb": 100.0,
        "peak_memory_method": "m",
    }


def _interval(cell: str) -> tuple[float, float]:
    low, high = cell.strip("[]").split(", ")
    return float(low), float(high)


# ---------------------------------------------------------------- statistics


def test_summary_table_mean_sample_std_and_incomplete_groups():
    frame = records_frame([_rec("a", 0, 0.5), _rec("a", 1, 0.7), _rec("b", 0, 0.9), _rec("b", 1, None, "failed")])
    table = summary_table(frame).set_index("model")
    assert table.loc["a", "test"] == "60.00 ± 14.14"  # sample std (ddof 1): sqrt(10^2 + 10^2) = 14.14
    assert _interval(table.loc["a", "test 95% CI"]) == pytest.approx((60 - T975[1] * 10, 60 + T975[1] * 10), abs=0.01)
    assert table.loc["a", "runs"] == "2/2" and table.loc["b", "runs"] == "1/2"
    assert table.loc["b", "test"] == "90.00" and table.loc["b", "test 95% CI"] == "single run"  # n = 1: no std
    assert table.loc["a", "status"] == "complete" and table.loc["b", "status"].startswith("incomplete: 1 not ok")


def test_interval_of_three_and_five_runs_matches_the_t_table():
    values = {"three": [0.5, 0.7, 0.8], "five": [0.91, 0.93, 0.90, 0.95, 0.92]}
    records = [_rec(model, seed, v, group=model) for model, vs in values.items() for seed, v in enumerate(vs)]
    table = summary_table(records_frame(records)).set_index("model")
    for model, vs in values.items():
        x = [100 * v for v in vs]
        n, mean = len(x), sum(x) / len(x)
        sd = math.sqrt(sum((v - mean) ** 2 for v in x) / (n - 1))
        half = T975[n - 1] * sd / math.sqrt(n)
        assert table.loc[model, "test"] == f"{mean:.2f} ± {sd:.2f}"
        assert _interval(table.loc[model, "test 95% CI"]) == pytest.approx((mean - half, mean + half), abs=0.01)
    assert table.loc["three", "test 95% CI"] == "[28.72, 104.61]"  # 66.67 ± 4.303 x 15.28 / sqrt 3


def test_other_columns_use_the_sample_std_too():
    recs = [{**_rec("a", s, 0.5), "train_time_per_epoch_s": t} for s, t in ((0, 1.0), (1, 3.0))]
    assert summary_table(records_frame(recs)).loc[0, "train s/epoch"] == "2.00 ± 1.41"


# ---------------------------------------------------------------- groups by code and data


def test_runs_of_different_commits_are_not_averaged_unless_asked():
    other = "fedcba9876543210fedcba9876543210fedcba98-dirty-abcdef123456"
    recs = [_rec("a", 0, 0.5), _rec("a", 1, 0.7), _rec("a", 0, 0.9, commit=other), _rec("a", 1, 0.9, commit=other)]
    table = summary_table(records_frame(recs))
    assert list(table.commit) == ["0123456", "fedcba9-dirty-abcdef"] and list(table.runs) == ["2/2", "2/2"]
    assert list(table.test) == ["60.00 ± 14.14", "90.00 ± 0.00"] and list(table.data) == ["feedbeef"] * 2
    merged = summary_table(records_frame(recs), merge_commits=True)
    assert len(merged) == 1 and merged.loc[0, "runs"] == "4/4"
    assert merged.loc[0, "commit"] == "0123456, fedcba9-dirty-abcdef"


def test_short_commit_names_unrecorded_and_dirty_states():
    assert short_commit(None) == short_commit("") == "unrecorded"
    assert short_commit("unknown") == "unknown" and short_commit(COMMIT) == "0123456"
    rec = {k: v for k, v in _rec("a", 0, 0.5).items() if k not in ("git_commit", "data")}
    table = summary_table(records_frame([rec]))
    assert table.loc[0, "commit"] == "unrecorded" and table.loc[0, "data"] == "-"


def test_missing_folds_are_marked_and_settings_kept_apart():
    folds = [_rec("nac", 0, 0.9, dataset="emnist", protocol="paper", fold=f) for f in range(3)]
    other = [_rec("nac", 0, 0.5, dataset="emnist", protocol="paper", fold=f, group="h") for f in range(5)]
    table = summary_table(records_frame(folds + other))
    assert len(table) == 2  # different settings are never averaged together
    three, five = table.iloc[0], table.iloc[1]
    assert three["status"] == "incomplete: 3/5 folds" and five["status"] == "complete"
    assert three["settings"] == "g" and five["settings"] == "h"
    assert "3 of 5 folds" in three["vs paper"] and "paper (NAC)" not in table  # not like for like: no figure


# ---------------------------------------------------------------- the paper's figure, like for like only


def _shipped(experiment: str, *overrides: str) -> dict:
    """The resolved config a run of a shipped experiment records."""
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return OmegaConf.to_container(
            compose("config", overrides=[f"experiment={experiment}", *overrides]), resolve=True
        )


def _paper_runs(config: dict, dataset="emnist", model="nac", folds=range(5), acc=0.95, failed=()):
    return [
        _rec(
            model,
            i,
            None if f in failed else acc + i / 1000,
            "failed" if f in failed else "ok",
            dataset=dataset,
            protocol="paper",
            fold=f,
            config=config,
        )
        for i, f in enumerate(folds)
    ]


def test_shipped_emnist_authors_experiment_is_like_for_like_and_shows_the_difference():
    table = summary_table(records_frame(_paper_runs(_shipped("emnist_authors"), model="nac_official")))
    row = table.iloc[0]
    assert row["vs paper"] == "like for like" and row["paper (NAC)"] == 96.64
    assert row["diff vs paper"] == pytest.approx(95.2 - 96.64)  # mean of 95.0 .. 95.4
    assert paper_gaps("emnist", "paper", "nac", _shipped("emnist_authors", "model=nac"), range(5)) == []


def test_masked_emnist_input_is_not_the_authors_pipeline():
    """experiment=emnist_paper masks the padding and feeds durations as time: the paper protocol,
    but not the authors' input, so no paper figure is attached."""
    assert paper_gaps("emnist", "paper", "nac_official", _shipped("emnist_paper", "model=nac_official"), range(5)) == [
        "input_mode masked (paper authors)",
        "backbone_units None (paper 170)",
    ]


@pytest.mark.parametrize("experiment,overrides", [("par_paper", []), ("bearings_paper", [])])
def test_shipped_paper_experiments_meet_the_paper_setup(experiment, overrides):
    dataset = experiment.split("_")[0]
    assert paper_gaps(dataset, "paper", "nac", _shipped(experiment, *overrides), range(5)) == []


@pytest.mark.parametrize(
    "overrides,folds,failed,gap",
    [
        (["protocol=clean"], [None] * 3, (), "clean protocol"),
        (["trainer.epochs=3"], range(5), (), "3 of 75 epochs"),
        (["trainer.limit_train_batches=2"], range(5), (), "2 batches per epoch"),
        ([], range(5), (4,), "4 of 5 folds"),
        ([], range(4), (), "4 of 5 folds"),
        (["dataset.builder.limit=300"], range(5), (), "data limited"),
        (["model.topk=4"], range(5), (), "topk 4 (paper 10)"),
        (["model.dense=true"], range(5), (), "dense True (paper False)"),
        (["protocol.split_seed=0"], range(5), (), "split seed 0 (paper 42)"),
        (["protocol.n_folds=3"], range(3), (), "3-fold (paper 5)"),
        (["model=lstm"], range(5), (), "not a NAC model"),
        (["model=nac_fc"], range(5), (), "NAC ablation"),
    ],
)
def test_emnist_groups_that_differ_from_the_paper_say_why(overrides, folds, failed, gap):
    config = _shipped("emnist_paper", *overrides)
    protocol, model = config["protocol"]["name"], model_choice("experiment=emnist_paper", *overrides)
    runs = [{**r, "protocol": protocol, "model": model} for r in _paper_runs(config, folds=folds, failed=failed)]
    row = summary_table(records_frame(runs)).iloc[0]
    assert gap in row["vs paper"].split("; ") and row["vs paper"] != "like for like"
    assert "paper (NAC)" not in row and "diff vs paper" not in row  # no group like for like: columns dropped


@pytest.mark.parametrize(
    "experiment,overrides,gap",
    [
        ("carracing_paper", [], "not the paper's recording"),
        ("udacity_paper", [], "not the paper's recording"),
        ("par_paper", ["dataset.builder.person=A"], "person A (paper B)"),
        ("par_paper", ["dataset.nac.backbone_units=null"], "backbone_units None (paper 170)"),
        (
            "bearings_paper",
            ["model.activation=relu", "dataset.builder.train_bearings=[Bearing1_4,Bearing1_7]"],
            "substituted bearings",
        ),
        (
            "bearings_paper",
            ["model.activation=relu", "dataset.builder.test_bearings.pronostia=Bearing1_2"],
            "substituted bearings",
        ),
        ("bearings_paper", ["model.activation=null"], "activation None (paper relu)"),
    ],
)
def test_data_and_settings_that_are_not_the_papers(experiment, overrides, gap):
    dataset = experiment.split("_")[0]
    assert paper_gaps(dataset, "paper", "nac", _shipped(experiment, *overrides), range(5)) == [gap]


def test_named_test_rows_of_the_bearings_get_their_own_figure():
    config = _shipped("bearings_paper")
    recs = [
        {
            **_rec("nac", 0, None, dataset="bearings", protocol="paper", fold=f, config=config),
            "metric": "mse",
            "metric_mode": "min",
            "test": {},
            "tests": {"pronostia": {"mse": 0.01, "score": 30.0 + f}, "hust": {"mse": 0.01, "score": 20.0}},
        }
        for f in range(5)
    ]  # paper runs select on validation MSE; the paper's figure is S
    table = summary_table(records_frame(recs)).set_index("dataset")
    assert table.loc["bearings/pronostia", "paper (NAC)"] == 37.5
    assert table.loc["bearings/pronostia", "diff vs paper"] == pytest.approx(32.0 - 37.5)
    assert table.loc["bearings/hust", "diff vs paper"] == pytest.approx(20.0 - 27.82)


def test_datasets_without_a_paper_figure_have_no_paper_columns():
    table = summary_table(records_frame([_rec("nac", 0, 0.9, dataset="digits")]))
    assert not {"paper (NAC)", "diff vs paper", "vs paper"} & set(table.columns)


# ---------------------------------------------------------------- paired comparison


def test_paired_comparison_by_seed_matches_scipy_ttest_rel():
    a, b = [0.91, 0.87, 0.95, 0.90], [0.88, 0.86, 0.90, 0.85]
    recs = (
        [_rec("nac", s, v, group="ga") for s, v in enumerate(a)]
        + [_rec("nac", 9, 0.5, group="ga")]
        + [_rec("lstm", s, v, group="gb") for s, v in enumerate(b)]
        + [_rec("lstm", 7, 0.5, group="gb")]
        + [_rec("lstm", 8, None, "failed", group="gb")]
    )
    (row,) = paired_comparison(records_frame(recs), "nac", "lstm").to_dict("records")
    diffs = 100 * (np.array(a) - np.array(b))
    low, high = stats.ttest_rel(100 * np.array(a), 100 * np.array(b)).confidence_interval(0.95)
    assert row["difference"] == f"{diffs.mean():.2f} ± {diffs.std(ddof=1):.2f}" and row["pairs"] == 4
    assert _interval(row["95% CI"]) == pytest.approx((low, high), abs=0.006)
    assert row["paired by"] == "seed" and row["comparison"] == "nac − lstm"
    assert row["unpaired"] == "seed 9 (nac only), seed 7 (lstm only)"  # the failed seed 8 is not a run to pair
    assert row["verdict"] == ("nac better" if low > 0 else "not distinguishable")
    assert low > 0  # the data above: nac higher in every seed


def test_paired_comparison_follows_the_metric_mode_and_refuses_to_rank_within_noise():
    lower_better = [_rec("x", s, v, mode="min") for s, v in enumerate([1.0, 2.0, 3.0])] + [
        _rec("y", s, v, mode="min") for s, v in enumerate([2.0, 3.1, 4.0])
    ]
    assert paired_comparison(records_frame(lower_better), "x", "y").loc[0, "verdict"] == "x better"
    noisy = [_rec("x", s, v) for s, v in enumerate([0.5, 0.9, 0.6])] + [
        _rec("y", s, v) for s, v in enumerate([0.6, 0.7, 0.6])
    ]
    assert paired_comparison(records_frame(noisy), "x", "y").loc[0, "verdict"] == "not distinguishable"
    same = [_rec(m, s, v) for m in "xy" for s, v in enumerate([0.5, 0.9, 0.6])]
    assert paired_comparison(records_frame(same), "x", "y").loc[0, "verdict"] == "identical in every pair"
    offset = [_rec("x", s, v) for s, v in enumerate([0.5, 0.9, 0.6])] + [
        _rec("y", s, v - 0.25) for s, v in enumerate([0.5, 0.9, 0.6])
    ]
    assert paired_comparison(records_frame(offset), "x", "y").loc[0, "verdict"] == "x better"
    single = [_rec("x", 0, 0.9), _rec("y", 0, 0.5)]
    row = paired_comparison(records_frame(single), "x", "y").iloc[0]
    assert (row["pairs"], row["95% CI"], row["verdict"]) == (1, "single pair", "single pair: no ranking")
    apart = [_rec("x", 0, 0.9), _rec("x", 1, 0.9), _rec("y", 2, 0.5)]
    row = paired_comparison(records_frame(apart), "x", "y").iloc[0]
    assert (row["pairs"], row["verdict"], row["unpaired"]) == (
        0,
        "no pairs",
        "seed 0 (x only), seed 1 (x only), seed 2 (y only)",
    )


def test_pair_units_matches_a_plain_loop_and_drops_ambiguous_units():
    a = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, 5.5], index=[3, 0, 1, 2, 6, 6])
    b = pd.Series([0.5, 1.5, 9.0, 7.0, 8.0], index=[0, 1, 4, 3, 2])
    b = pd.concat([b, pd.Series([1.0], index=[4])])  # unit 4 twice on b's side, absent on a's
    # reference: a plain loop over units
    count_a, count_b = {u: list(a.index).count(u) for u in a.index}, {u: list(b.index).count(u) for u in b.index}
    ambiguous = sorted(u for u in set(count_a) | set(count_b) if count_a.get(u, 0) > 1 or count_b.get(u, 0) > 1)
    expected = {}
    for unit in sorted(set(count_a) & set(count_b)):
        if unit not in ambiguous:
            expected[unit] = float(a[unit]) - float(b[unit])
    pairing = pair_units(a, b)
    assert pairing.differences.to_dict() == expected == {0: 1.5, 1: 1.5, 2: -4.0, 3: -6.0}
    assert list(pairing.differences.index) == [0, 1, 2, 3]  # sorted by unit
    assert (pairing.only_a, pairing.only_b, pairing.duplicated) == ([], [], [4, 6])
    lone = pair_units(pd.Series([1.0, 2.0], index=[0, 5]), pd.Series([1.0], index=[7]))
    assert (lone.differences.empty, lone.only_a, lone.only_b, lone.duplicated) == (True, [0, 5], [7], [])
    tuples = pd.MultiIndex.from_tuples([(0, 0), (1, 0)], names=["fold", "seed"])
    folds = pair_units(pd.Series([0.9, 0.8], index=tuples), pd.Series([0.7], index=tuples[1:]))
    assert folds.differences.tolist() == pytest.approx([0.1]) and folds.only_a == [(0, 0)]


def test_paper_protocol_pairs_by_fold_and_other_settings_or_commits_are_not_paired():
    config = _shipped("emnist_paper")
    a = [_rec("nac", 0, 0.90 + f / 100, protocol="paper", fold=f, config=config) for f in range(5)]
    b = [_rec("lstm", 1, 0.80, protocol="paper", fold=f, config=config) for f in range(4)]
    other_data = [{**_rec("lstm", 1, 0.99, protocol="paper", fold=4, config=config, digest="0" * 16)}]
    table = paired_comparison(records_frame(a + b + other_data), "nac", "lstm")
    row = table.iloc[0]
    assert (row["paired by"], row["pairs"], row["unpaired"]) == ("fold", 4, "fold 4 (nac only)")
    assert row["difference"] == f"{np.mean([10.0, 11.0, 12.0, 13.0]):.2f} ± {np.std([10, 11, 12, 13], ddof=1):.2f}"
    assert len(table) == 1  # lstm's fold 4 on other data has no nac partner there and is not paired with it
    new_code = [{**r, "git_commit": "f" * 40} for r in b]
    assert paired_comparison(records_frame(a + new_code), "nac", "lstm").empty  # other code: never paired
    assert paired_comparison(records_frame(a + new_code), "nac", "lstm", merge_commits=True).pairs.tolist() == [4]


# ---------------------------------------------------------------- Markdown, the script and the sweep table


def test_markdown_table_prints_cells_as_formatted_and_failed_groups_without_nan():
    table = summary_table(records_frame([_rec("a", 0, 0.9), _rec("b", 0, None, "failed")]))
    rows = {
        line.split("|")[3].strip(): [c.strip() for c in line.split("|")[1:-1]]
        for line in to_markdown(table).splitlines()[2:]
    }
    header = [c.strip() for c in to_markdown(table).splitlines()[0].split("|")[1:-1]]
    a, b = dict(zip(header, rows["a"])), dict(zip(header, rows["b"]))
    assert a["test"] == "90.00" and a["train s/epoch"] == "1.00" and a["params"] == "10"  # digits kept
    assert b["test"] == "-" and b["params"] == "-" and "nan" not in to_markdown(table)
    assert b["test 95% CI"] == "-" and a["test 95% CI"] == "single run" and b["memory"] == "-"  # empty cell


def _script(tmp_path, *args):
    return subprocess.run(
        [
            sys.executable,
            "scripts/make_tables.py",
            "--records",
            str(tmp_path / "records"),
            "--out-dir",
            str(tmp_path),
            "--name",
            "t",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_make_tables_script_groups_by_commit_and_writes_paired_comparisons(tmp_path):
    recs = [
        _rec("m", 0, 0.5),
        _rec("m", 1, 0.7),
        _rec("n", 0, 0.4),
        _rec("n", 1, 0.5),
        _rec("m", 2, 0.9, commit="f" * 40),
    ]
    for i, rec in enumerate(recs):
        write_json_atomic(tmp_path / "records" / f"r{i}.json", {"schema": 1, **rec})
    proc = _script(tmp_path, "--compare", "m", "n")
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table.test) == ["60.00 ± 14.14", "45.00 ± 7.07", "90.00"] and list(table.commit)[2] == "fffffff"
    paired = pd.read_csv(tmp_path / "t.paired.csv")
    assert paired.loc[0, "difference"] == "15.00 ± 7.07" and paired.loc[0, "pairs"] == 2
    markdown = (tmp_path / "t.md").read_text()
    assert markdown.startswith("Command: `python scripts/make_tables.py --records") and LEGEND in markdown
    assert "Paired comparisons" in markdown and "m − n" in markdown
    merged = _script(tmp_path, "--merge-commits")
    assert merged.returncode == 0, merged.stderr
    assert pd.read_csv(tmp_path / "t.csv").runs.tolist() == ["3/3", "2/2"]


@pytest.mark.slow
def test_make_tables_dataset_filter_keeps_the_rows_of_named_test_sets(tmp_path):
    """`--dataset bearings` keeps the per-bearing rows `bearings/<name>`, and nothing of other datasets."""
    bearing = {
        **_rec("m", 0, None, dataset="bearings", protocol="paper", fold=0),
        "metric": "mse",
        "metric_mode": "min",
        "test": {},
        "tests": {"pronostia": {"mse": 0.01, "score": 30.0}, "hust": {"mse": 0.02, "score": 20.0}},
    }
    for i, rec in enumerate([bearing, _rec("m", 0, 0.5, dataset="bearings_x"), _rec("m", 0, 0.5)]):
        write_json_atomic(tmp_path / "records" / f"r{i}.json", {"schema": 1, **rec})
    proc = _script(tmp_path, "--dataset", "bearings")
    assert proc.returncode == 0, proc.stderr
    assert sorted(pd.read_csv(tmp_path / "t.csv").dataset) == ["bearings/hust", "bearings/pronostia"]


def test_sweep_table_has_commit_interval_and_legend(tmp_path):
    for job, (seed, acc) in enumerate(((0, 0.5), (1, 0.7))):
        write_json_atomic(tmp_path / str(job) / "record.json", {"schema": 1, **_rec("m", seed, acc)})
    text = write_sweep_table(tmp_path).read_text()
    assert "| 0123456 " in text and "60.00 ± 14.14" in text and "2/2" in text and text.rstrip().endswith(LEGEND)
    assert pd.read_csv(tmp_path / "table.csv").loc[0, "test 95% CI"] == "[-67.06, 187.06]"


def test_records_with_and_without_config_model_name_pair_and_group_together():
    """A record made while the model configs had ``name:`` pairs with one made after (pairing leaves the
    model node out), and tables group by the record's own group_hash, not by its config."""
    new_cfg = {"protocol": {"n_folds": 5}, "model": {"_target_": "m.M", "units": 8}, "trainer": {"epochs": 2}}
    old_cfg = {**new_cfg, "model": {**new_cfg["model"], "name": "m"}}
    old, new = _rec("m", 0, 0.90, config=old_cfg), _rec("m", 1, 0.92, config=new_cfg)
    assert pairing_context(old) == pairing_context(new)
    assert pairing_context(new) != pairing_context(_rec("m", 1, 0.92, config={**new_cfg, "trainer": {"epochs": 3}}))
    table = summary_table(records_frame([old, new]))
    assert list(table.runs) == ["2/2"] and list(table.test) == ["91.00 ± 1.41"]
