"""The C-MAPSS report (nac/harness/report_cmapss.py, ``make_report.py cmapss``) on synthetic records.

References are independent of the code under test: means, sample stds and t intervals worked out by hand
(t quantile from a printed table), paired intervals from scipy.stats.ttest_rel. Records carry the config
``experiment=cmapss_full`` composes, so the groups' settings and commands are the real ones."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from functools import cache

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image
from scipy import stats

from nac.harness.predictions import SetPredictions, predictions_path, write_predictions
from nac.harness.records import write_json_atomic
from nac.harness.report import main
from nac.harness.report_cmapss import goal_sentence
from nac.harness.tables import summarize
from tests.conftest import CONFIGS, ROOT
from tests.test_report_bearings import _table

T975_2 = 4.3027  # two-sided 95 % Student-t quantile, 2 degrees of freedom (printed table)
COMMIT = "0123456789abcdef0123456789abcdef01234567"
NAC_RMSE, NAC_SCORE, NAC_VAL = [12.0, 12.6, 13.5], [250.0, 300.0, 410.0], [11.0, 12.0, 13.0]
LSTM_RMSE = [13.0, 13.1, 14.9]  # nac − lstm per seed: -1.0, -0.5, -1.4
CFC_RMSE = [12.5, 13.1, 13.9]  # nac − cfc per seed: -0.5, -0.5, -0.4


@cache
def _composed(model: str, subset: str) -> dict:
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        overrides = ["experiment=cmapss_full", f"model={model}", f"dataset.builder.subset={subset}"]
        return OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)


def _set(config: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        config = config[part]
    config[leaf] = value


def _rec(
    model: str,
    subset: str,
    seed: int,
    rmse: float | None,
    *,
    score: float = 300.0,
    val: float = 12.0,
    status: str = "ok",
    tag: str | None = None,
    settings: dict | None = None,
    epochs: tuple[int, int] = (40, 30),
) -> dict:
    """A cmapss_full record as the runner writes it (``settings``: dotted config keys changed, as overrides)."""
    config = copy.deepcopy(_composed(model, subset))
    config["seed"], config["tag"] = seed, subset if tag is None else tag
    if "wiring_seed" in config["model"]:
        config["model"]["wiring_seed"] = seed  # ${seed} in the model config
    for key, value in (settings or {}).items():
        _set(config, key, value)
    ok = status == "ok" and rmse is not None
    return {
        "schema": 1,
        "status": status,
        "model": model,
        "dataset": "cmapss",
        "protocol": "clean",
        "fold": None,
        "seed": seed,
        "tag": config["tag"],
        "git_commit": COMMIT,
        "device": "cpu (x86_64, 1 threads)",
        "config": config,
        "data": {"digest": f"digest-{subset}", "files": {}},
        "group_hash": f"{model}-{subset}-{config['tag']}-{sorted((settings or {}).items())}",
        "metric": "rmse",
        "metric_mode": "min",
        "epochs_run": epochs[0],
        "best_epoch": epochs[1],
        "history": [{"epoch": 1, "val_rmse": val, "epoch_time_s": 90.0}] * epochs[0],
        "val": {"rmse": val} if ok else {},
        "test": {"rmse": rmse, "score": score} if ok else {},
        "started": "2026-12-01T10:00:00+00:00",
        "finished": "2026-12-01T11:00:00+00:00",
        "wall_time_s": 3600.0,
    }


def _nac_and_baselines() -> list[dict]:
    records = [
        _rec("nac", "FD001", s, r, score=c, val=v, epochs=e)
        for s, (r, c, v, e) in enumerate(zip(NAC_RMSE, NAC_SCORE, NAC_VAL, [(50, 40), (45, 35), (38, 28)]))
    ]
    records += [_rec("lstm", "FD001", s, r, val=12.0 + s) for s, r in enumerate(LSTM_RMSE)]
    records += [_rec("cfc", "FD001", s, r, val=14.0) for s, r in enumerate(CFC_RMSE)]
    return records


def _path(root, rec: dict, i: int):
    return root / "cmapss" / "clean" / rec["model"] / f"seed{rec['seed']}-{i:03d}.json"


def _write(tmp_path, records: list[dict], *extra: str, tune: list[dict] | None = None) -> str:
    for i, rec in enumerate(records):
        write_json_atomic(_path(tmp_path / "records", rec, i), rec)
    for i, rec in enumerate(tune or []):
        write_json_atomic(_path(tmp_path / "tune", rec, i), rec)
    out = tmp_path / "out" / "reproduction_cmapss.md"
    tune_args = ["--tune-records", str(tmp_path / "tune")] if tune is not None else []
    assert main(["cmapss", "--records", str(tmp_path / "records"), "--out", str(out), *tune_args, *extra]) == 0
    return out.read_text()


def _row(rows: list[dict], model: str) -> dict:
    (row,) = [r for r in rows if r["model"] == model]
    return row


# ---------------------------------------------------------------- section 1


def test_subset_table_matches_hand_computed_numbers(tmp_path):
    records = _nac_and_baselines()
    records += [_rec("nac", "FD002", s, 30.0 + s) for s in range(3)]  # another subset: its own table
    records += [_rec("nac", "FD001", s, 5.0, tag="FD001_tuned") for s in range(3)]  # another tag: not the campaign
    text = _write(tmp_path, records)
    nac = _row(_table(text, "### FD001", "model"), "NAC (nac)")
    # RMSE 12.0, 12.6, 13.5: mean 12.7, deviations -0.7, -0.1, 0.8, sample variance 1.14 / 2 = 0.57
    std = math.sqrt(0.57)
    half = T975_2 * std / math.sqrt(3)
    assert nac["test RMSE"] == f"12.70 ± {std:.2f}" == "12.70 ± 0.75"
    assert nac["test RMSE 95% CI"] == f"[{12.7 - half:.2f}, {12.7 + half:.2f}]" == "[10.82, 14.58]"
    assert nac["NASA score"] == "320.0 ± 81.9"  # 250, 300, 410: variance (4900 + 400 + 8100) / 2 = 6700
    assert nac["val RMSE"] == "12.00 ± 1.00" and nac["epochs run/best"] == "50/40, 45/35, 38/28"
    assert nac["runs (ok/expected)"] == "3/3" and nac["status"] == "complete"
    assert nac["settings"] == "as the experiment"
    fd002 = _row(_table(text, "### FD002", "model"), "NAC (nac)")
    assert fd002["test RMSE"] == "31.00 ± 1.00" and fd002["runs (ok/expected)"] == "3/3"
    quoted = "(literature; RMSE as later work quotes it, score unchecked)"
    recalled = "(literature, as recalled, unchecked)"
    li = _row(_table(text, "### FD002", "model"), f"Li, Ding & Sun 2018, CNN {quoted}")
    assert li["test RMSE"] == "22.36" and li["NASA score"] == "10,412" and li["status"] == "reference"
    zheng = _row(_table(text, "### FD001", "model"), f"Zheng et al. 2017, LSTM {quoted}")
    assert zheng["test RMSE"] == "16.14" and zheng["NASA score"] == "338"
    zheng = _row(_table(text, "### FD002", "model"), f"Zheng et al. 2017, LSTM {recalled}")  # not found quoted
    assert zheng["test RMSE"] == "24.49"
    other = _table(text, "## Other C-MAPSS records", "model")  # listed apart, not pooled
    assert other == [{"model": "nac", "subset": "FD001", "tag": "FD001_tuned", "status": "ok", "records": "3"}]


def test_incomplete_single_and_absent_groups_say_what_to_run(tmp_path):
    records = [_rec("lstm", "FD003", 0, 20.0), _rec("lstm", "FD003", 1, None, status="failed")]
    records += [_rec("cfc", "FD003", s, 20.0, settings={"trainer.epochs": 2}) for s in range(3)]
    text = _write(tmp_path, records)
    rows = _table(text, "### FD003", "model")
    lstm = _row(rows, "LSTM")
    assert lstm["runs (ok/expected)"] == "1/3" and lstm["test RMSE"] == "20.00"
    assert lstm["test RMSE 95% CI"] == "single run"
    assert lstm["status"] == (
        "incomplete: 1 not ok (failed); seeds 1, 2 missing: "
        "`nac-bench experiment=cmapss_full model=lstm dataset.builder.subset=FD003 seed=1,2`; single run"
    )
    cfc = _row(rows, "CfC")  # other settings only: shown with them, never silently as the experiment
    assert cfc["settings"] == "trainer.epochs=2" and cfc["status"] == "complete"
    assert _row(rows, "LTC")["status"] == (
        "not run yet: `nac-bench experiment=cmapss_full model=ltc dataset.builder.subset=FD003`"
    )
    assert "- **NAC (nac) on FD001**: not run yet" in text


def test_a_variant_rerun_with_as_many_runs_never_takes_the_main_row(tmp_path):
    """Every LTC run of the campaign sets one key (the compiled solver). A later diagnostic re-run that
    changes more keys, with as many ok runs and read first, stays among the other settings."""
    compiled = {"model.compile_solver": True}
    patience = {**compiled, "trainer.early_stopping_patience": 50, "trainer.scheduler.patience": 10}
    records = [_rec("ltc", "FD003", s, 25.0 + s, settings=patience) for s in range(3)]
    records += [_rec("ltc", "FD003", s, 20.0 + s, settings=compiled) for s in range(3)]
    text = _write(tmp_path, records)
    main_row = _row(_table(text, "### FD003", "model"), "LTC")
    assert main_row["test RMSE"] == "21.00 ± 1.00" and main_row["settings"] == "model.compile_solver=true"
    (other,) = _table(text, "FD003, runs with other settings", "model")
    assert other["test RMSE"] == "26.00 ± 1.00" and "trainer.early_stopping_patience=50" in other["settings"]


def _linear_csv(path, rows) -> str:
    columns = ["subset", "window", "alpha", "train RMSE", "val RMSE", "test RMSE", "test NASA score", "test engines"]
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    return str(path)


def test_the_linear_reference_row_and_the_models_not_below_it(tmp_path):
    csv = _linear_csv(tmp_path / "linear.csv", [["FD001", 30, 10.0, 16.8, 16.12, 13.1, 427.84, 100]])
    text = _write(tmp_path, _nac_and_baselines(), "--linear-reference", csv)
    row = _row(_table(text, "### FD001", "model"), "Ridge on the flattened window (linear reference)")
    assert (row["test RMSE"], row["NASA score"], row["val RMSE"]) == ("13.10", "427.8", "16.12")
    assert row["status"] == "reference" and row["settings"] == "alpha 10 (chosen on val RMSE)"
    # means: NAC 12.70, CfC 13.17, LSTM 13.67 (the constants above): CfC and LSTM are not below 13.10
    assert "Mean test RMSE not below the linear reference (13.10): LSTM 13.67; CfC 13.17." in text
    assert f"Read from `{csv}`." in text
    fd002 = _table(text, "### FD002", "model")  # the CSV has no FD002: no row, no sentence
    assert not [r for r in fd002 if r["model"].startswith("Ridge")] and "reference (" not in text.split("### FD002")[1]


def test_a_missing_or_malformed_linear_reference_is_refused(tmp_path, capsys):
    (tmp_path / "records").mkdir()
    args = ["cmapss", "--records", str(tmp_path / "records"), "--out", str(tmp_path / "r.md")]
    assert main([*args, "--linear-reference", str(tmp_path / "none.csv")]) == 2
    assert "none.csv does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"subset": ["FD001"], "rmse": [1.0]}).to_csv(bad, index=False)
    assert main([*args, "--linear-reference", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "lacks the column(s)" in err and "scripts/cmapss_linear_reference.py --out" in err


def test_empty_records_folder_reports_every_group_not_run(tmp_path):
    (tmp_path / "none").mkdir()
    out = tmp_path / "r.md"
    assert main(["cmapss", "--records", str(tmp_path / "none"), "--out", str(out)]) == 0
    text = out.read_text()
    for subset in ("FD001", "FD002", "FD003", "FD004"):
        statuses = {r["status"] for r in _table(text, f"### {subset}", "model")}
        assert statuses == {"reference"} | {s for s in statuses if s.startswith("not run yet: `nac-bench")}
        assert len(statuses) == 8  # 7 models, one status each, and the references
    assert "(no subset has runs of both sides yet)" in text and not list(tmp_path.glob("r_*.png"))


# ---------------------------------------------------------------- sections 2 and 3


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            [12.0, 12.1, 12.2],
            "goal met (mean 12.10 ± 0.10 over 3 runs, 0.40 below 12.5); the whole 95% CI [11.85, 12.35]",
        ),
        (
            [12.0, 12.2, 12.4],
            "goal met on the mean but not established (mean 12.20 ± 0.20 over 3 runs, 0.30 below 12.5)",
        ),
        (
            [12.4, 12.6, 13.1],
            "goal not met (mean 12.70 ± 0.36 over 3 runs, 0.20 above 12.5); the 95% CI [11.80, 13.60]",
        ),
        ([13.0, 13.1, 13.2], "goal not met (mean 13.10 ± 0.10 over 3 runs, 0.60 above 12.5); the whole 95% CI [12.85"),
        ([12.3], "goal met on a single run (mean 12.30 over 1 run, 0.20 below 12.5); no interval."),
    ],
)
def test_goal_sentence_states_met_or_not_and_by_how_much(values, expected):
    # half widths: 4.3027 x std / sqrt(3): 0.2484 (std 0.1), 0.4968 (std 0.2), 0.8966 (std sqrt(0.13) = 0.3606)
    assert expected in goal_sentence(summarize(values), "NAC (nac)")


def test_goal_line_and_paired_differences_match_independent_references(tmp_path):
    records = _nac_and_baselines() + [_rec("transformer", "FD001", s, 14.0 + s) for s in (1, 2)]
    text = _write(tmp_path, records)
    assert "goal not met (mean 12.70 ± 0.75 over 3 runs, 0.20 above 12.5); the 95% CI [10.82, 14.58] still" in text
    rows = {r["comparison"]: r for r in _table(text, "## 3.", "subset")}
    for baseline, values, verdict in (
        ("lstm", LSTM_RMSE, "not distinguishable"),
        ("cfc", CFC_RMSE, "nac better (lower RMSE)"),  # a Welch (unpaired) interval would include 0
    ):
        test = stats.ttest_rel(NAC_RMSE, values)
        low, high = test.confidence_interval(0.95)
        diff = np.subtract(NAC_RMSE, values)
        row = rows[f"nac − {baseline}"]
        assert row["difference (RMSE)"] == f"{diff.mean():.2f} ± {diff.std(ddof=1):.2f}"
        assert row[r"paired-t 95% CI"] == f"[{low:.2f}, {high:.2f}]"
        assert row["verdict"] == verdict and row["pairs (seeds)"] == "3 (0, 1, 2)"
    assert rows["nac − cfc"]["paired-t 95% CI"] == "[-0.61, -0.32]"  # -0.4667 ± 4.3027 x 0.0577 / sqrt(3)
    welch = stats.ttest_ind(NAC_RMSE, CFC_RMSE, equal_var=False).confidence_interval(0.95)
    assert welch.low < 0 < welch.high  # so the cfc verdict needs the pairing
    # the transformer has seeds 1 and 2: pairs by seed (12.6 − 15.0, 13.5 − 16.0), not by position
    assert rows["nac − transformer"]["difference (RMSE)"] == "-2.45 ± 0.07"
    assert rows["nac − transformer"]["pairs (seeds)"] == "2 (1, 2)"
    assert rows["nac − transformer"]["unpaired"] == "seed 0 (nac only)"
    assert "Not compared yet (a side not run): FD001 nac − ltc, FD001 nac − cnn1d, FD001 nac_official − lstm" in text


# ---------------------------------------------------------------- section 4


TRIALS = [  # (lr, width, topk, mode, val RMSE, test RMSE): the best by val (11.0) is not the best by test (11.8)
    (5e-4, 64, 12, "euler", 11.0, 13.0),
    (2e-3, 32, 4, "exact", 11.5, 11.8),
    (1e-3, 16, 20, "steady", 12.5, 12.5),
    (3e-3, 64, 8, "exact", 13.0, 12.9),
]


def _trial(model: str, lr: float, width: int, val: float, test: float, **nac) -> dict:
    settings = {"trainer.optimizer.lr": lr, "dataset.width": width, "trainer.save_predictions": False}
    settings["paths.records_dir"] = "runs/tune/records"
    settings.update({f"model.{k}": v for k, v in {**nac, **({"d_model": width} if model == "nac" else {})}.items()})
    return _rec(model, "FD001", 0, test, val=val, tag="tune", settings=settings)


def test_tuned_against_default_picks_the_trial_on_validation(tmp_path):
    tune = [_trial("nac", lr, w, v, t, topk=k, mode=m) for lr, w, k, m, v, t in TRIALS]
    tune += [_rec("nac", "FD001", 0, None, status="failed", tag="tune")]
    tune += [_trial("lstm", lr, w, v, t) for lr, w, _, _, v, t in TRIALS[:3]]
    best = tune[0]["config"]
    rerun = {"trainer.optimizer.lr": 5e-4, "dataset.width": 64, "model.d_model": 64, "model.topk": 12}
    rerun["model.mode"] = "euler"
    records = _nac_and_baselines() + [
        _rec("nac", "FD001", s, r, tag="FD001_tuned", settings=rerun) for s, r in enumerate([12.1, 12.2, 12.6])
    ]
    assert records[-1]["config"]["model"]["wiring_seed"] == 2 != best["model"]["wiring_seed"]  # seed-derived
    text = _write(tmp_path, records, tune=tune)
    rows = [r for r in _table(text, "## 4.", "model") if r["model"] == "NAC (nac), FD001"]
    default, chosen, tuned = rows
    assert default["configuration"] == "default" and default["test RMSE"] == "12.70 ± 0.75"
    assert chosen["configuration"] == "best of 4 ok trials (seed 0), chosen on val"
    assert chosen["val RMSE"] == "11.00" and chosen["test RMSE"] == "13.00" and chosen["runs"] == "1 run"
    assert chosen["settings"] == (
        "trainer.optimizer.lr=0.0005 (default 0.001); dataset.width=64 (default 32); model.topk=12 (default 8); "
        "model.mode=euler (default exact)"
    )
    # 12.1, 12.2, 12.6: mean 12.3, variance (0.04 + 0.01 + 0.09) / 2 = 0.07
    assert tuned["configuration"] == "tuned, re-run (tag FD001_tuned)" and tuned["runs"] == "3/3 seeds"
    half = T975_2 * math.sqrt(0.07) / math.sqrt(3)
    assert (
        tuned["test RMSE"] == "12.30 ± 0.26" and tuned["test RMSE 95% CI"] == f"[{12.3 - half:.2f}, {12.3 + half:.2f}]"
    )
    assert "**NAC (nac), tuned (tag FD001_tuned) on FD001**: goal met on the mean but not established" in text
    lstm = [r for r in _table(text, "## 4.", "model") if r["model"] == "LSTM, FD001"]
    assert lstm[1]["val RMSE"] == "11.00" and lstm[2]["runs"] == (
        "not run yet: `nac-bench experiment=cmapss_full model=lstm dataset.builder.subset=FD001 "
        "trainer.optimizer.lr=0.0005 dataset.width=64 tag=FD001_tuned seed=0,1,2`"
    )
    assert "Trial budgets: nac (FD001) 5, lstm (FD001) 3 trials (not the same: compare with care)." in text
    assert "- NAC (nac), FD001: 4 ok of 5 trial(s), `nac-bench experiment=cmapss_tune_nac`: commit(s) 0123456" in text
    assert "Strongest baseline on FD001 by the default runs' mean validation RMSE: `lstm` (13.00;" in text


def test_the_rerun_command_keeps_the_best_trials_values_at_full_precision(tmp_path):
    """The table rounds the learning rate; the command must not, or its runs would not be the best trial's."""
    lr = 0.00041321999401009157
    tune = [_trial("lstm", lr, 16, 11.0, 13.0), _trial("lstm", 2e-3, 32, 12.0, 12.0)]
    text = _write(tmp_path, _nac_and_baselines(), tune=tune)
    chosen, rerun = [r for r in _table(text, "## 4.", "model") if r["model"] == "LSTM, FD001"][1:]
    assert "trainer.optimizer.lr=0.000413 (default 0.001)" in chosen["settings"]
    assert f"trainer.optimizer.lr={lr} dataset.width=16 tag=FD001_tuned" in rerun["runs"]


def test_tuning_without_trials_says_so(tmp_path):
    text = _write(tmp_path, _nac_and_baselines())
    assert "No trial records given (`--tune-records <output root>/tune/records`)." in text
    (tmp_path / "tune").mkdir()
    text = _write(tmp_path, _nac_and_baselines(), tune=[])
    assert f"No tuning trial (tag `tune`) under {tmp_path / 'tune'} yet." in text


# ---------------------------------------------------------------- section 5 and the command line


def _predictions(root, records: list[dict], index: int, shift: float = 0.0) -> None:
    """A predictions file for ``records[index]`` under ``root`` whose RMSE is the record's (+ ``shift``)."""
    rec = records[index]
    true = np.linspace(5.0, 125.0, 100)
    pred = true + (rec["test"]["rmse"] + shift) * np.where(np.arange(100) % 2 == 0, 1.0, -1.0)
    path = predictions_path(_path(root, rec, index))
    info = {"dataset": "cmapss", "model": rec["model"], "seed": rec["seed"], "tag": rec["tag"], "task": "regression"}
    write_predictions(
        path, {"test": SetPredictions(pred, true)}, {**info, "record": path.name[: -len(".predictions.npz")] + ".json"}
    )


def test_predictions_are_found_under_the_predictions_root_and_checked(tmp_path):
    records = _nac_and_baselines()
    for index in (0, 3):  # nac and lstm, seed 0
        _predictions(tmp_path / "campaign", records, index)
    _predictions(tmp_path / "campaign", records, 6, shift=1.0)  # cfc: a file whose RMSE is not the record's
    text = _write(tmp_path, records)  # default: beside the records, where there are none
    assert "No predictions file found, so no plot: nac (no " in text and not list((tmp_path / "out").glob("*.png"))
    text = _write(tmp_path, records, "--predictions", str(tmp_path / "campaign"))
    png = tmp_path / "out" / "reproduction_cmapss_FD001.png"
    assert "![FD001: predictions against the truth](reproduction_cmapss_FD001.png)" in text
    assert Image.open(png).size == (900, 2 * 252)  # a panel per model with a file: 10 x 2.8 inches each at 90 dpi
    assert "its RMSE 13.5000 differs from the record's 12.5000" in text
    assert "### FD002\n\nNo predictions file found, so no plot: nac (no ok seed-0 run)" in text
    assert not (tmp_path / "out" / "reproduction_cmapss_FD002.png").exists()


def test_bad_arguments_are_one_line(tmp_path, capsys):
    assert main(["cmapss", "--records", str(tmp_path / "absent"), "--out", str(tmp_path / "r.md")]) == 2
    assert "absent does not exist" in capsys.readouterr().err
    (tmp_path / "rec").mkdir()
    assert main(["cmapss", "--records", str(tmp_path / "rec"), "--out", str(tmp_path / "r.txt")]) == 2
    assert "must name a .md file" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "r.md"), "cmapss"]) == 2
    assert "cmapss must come first" in capsys.readouterr().err


@pytest.mark.slow
def test_make_report_script_writes_the_cmapss_report(tmp_path):
    for i, rec in enumerate(_nac_and_baselines()):
        write_json_atomic(_path(tmp_path / "records", rec, i), rec)
    out = tmp_path / "r.md"
    done = subprocess.run(
        [sys.executable, "scripts/make_report.py", "cmapss", "--records", str(tmp_path / "records"), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (
        f"Generated by `python scripts/make_report.py cmapss --records {tmp_path / 'records'} --out {out}`"
        in out.read_text()
    )


def test_tuned_nac_and_tuned_baseline_are_paired_by_seed(tmp_path):
    tune = [_trial("nac", lr, w, v, t, topk=k, mode=m) for lr, w, k, m, v, t in TRIALS]
    tune += [_trial("lstm", lr, w, v, t) for lr, w, _, _, v, t in TRIALS[:3]]
    nac_settings = {"trainer.optimizer.lr": 5e-4, "dataset.width": 64, "model.d_model": 64, "model.topk": 12}
    nac_settings["model.mode"] = "euler"
    lstm_settings = {"trainer.optimizer.lr": 5e-4, "dataset.width": 64}
    nac_tuned, lstm_tuned = [12.1, 12.2, 12.6], [13.0, 12.0]  # lstm: seeds 0 and 2 only
    records = _nac_and_baselines()
    records += [_rec("nac", "FD001", s, r, tag="FD001_tuned", settings=nac_settings) for s, r in enumerate(nac_tuned)]
    records += [
        _rec("lstm", "FD001", s, r, tag="FD001_tuned", settings=lstm_settings) for s, r in zip((0, 2), lstm_tuned)
    ]
    text = _write(tmp_path, records, tune=tune)
    (row,) = _table(text, "Tuned against tuned", "subset")
    assert row["comparison"] == "NAC (nac), tuned (tag FD001_tuned) − LSTM, tuned (tag FD001_tuned)"
    diff = np.array([12.1 - 13.0, 12.6 - 12.0])  # seeds 0 and 2, not positions 0 and 1
    low, high = stats.ttest_rel([12.1, 12.6], lstm_tuned).confidence_interval(0.95)
    assert row["difference (RMSE)"] == f"{diff.mean():.2f} ± {diff.std(ddof=1):.2f}"
    assert row["paired-t 95% CI"] == f"[{low:.2f}, {high:.2f}]" and row["pairs (seeds)"] == "2 (0, 2)"
    assert row["unpaired"] == "seed 1 (nac only)" and row["verdict"] == "not distinguishable"
