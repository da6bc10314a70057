"""The runner, its records, reproducibility, failure handling, tables and the command line."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from nac.cli import with_default_experiment
from nac.harness import runner as runner_module
from nac.harness import train as train_module
from nac.harness.memory import PeakMemory
from nac.harness.records import load_records
from nac.harness.runner import SetupError, run
from nac.models.contract import last_valid_step
from tests.conftest import ROOT, run_cli

REQUIRED = {
    "status",
    "model",
    "dataset",
    "protocol",
    "seed",
    "test",
    "val",
    "parameters",
    "train_time_per_epoch_s",
    "latency_per_sample_s",
    "peak_memory_mb",
    "peak_memory_method",
    "config",
    "versions",
    "git_commit",
    "device",
    "history",
    "best_epoch",
}


def _records(tmp_path: Path) -> list[dict]:
    return load_records(tmp_path / "records")


def test_run_writes_complete_record(make_cfg, tmp_path):
    best = run(make_cfg("model=nac", "seed=0"))
    (rec,) = _records(tmp_path)
    assert REQUIRED <= rec.keys()
    assert rec["status"] == "ok" and rec["seed"] == 0 and rec["protocol"] == "clean"
    assert rec["val"]["accuracy"] == pytest.approx(best)
    assert 0.0 <= rec["test"]["accuracy"] <= 1.0 and rec["epochs_run"] == 2
    assert rec["config"]["model"]["variant"] == "paper" and rec["config"]["seed"] == 0
    assert rec["versions"]["torch"] == torch.__version__
    assert rec["peak_memory_method"].startswith("cpu_peak_rss") and rec["peak_memory_mb"] > 50
    assert rec["parameters"] > rec["parameters_sequence_model"] > 0
    assert rec["latency_per_sample_s"] > 0 and rec["device"].startswith("cpu")
    assert Path(rec["_path"]).name.startswith("seed0-")


def test_same_config_and_seed_give_same_numbers(make_cfg, tmp_path):
    run(make_cfg("model=nac_official", "seed=0"))
    first = _records(tmp_path)[0]
    Path(first["_path"]).unlink()
    run(make_cfg("model=nac_official", "seed=0"))
    second = _records(tmp_path)[0]
    assert [h["train_loss"] for h in first["history"]] == [h["train_loss"] for h in second["history"]]
    assert first["test"] == second["test"]
    run(make_cfg("model=nac_official", "seed=1"))
    other = [r for r in _records(tmp_path) if r["seed"] == 1][0]
    assert other["history"][0]["train_loss"] != first["history"][0]["train_loss"]


def test_runs_with_different_settings_get_different_records(make_cfg, tmp_path):
    run(make_cfg("model=nac", "model.topk=4"))
    run(make_cfg("model=nac", "model.topk=6"))
    paths = {r["_path"] for r in _records(tmp_path)}
    assert len(paths) == 2


def test_bad_config_value_is_a_setup_error_with_the_choices(make_cfg, tmp_path):
    with pytest.raises(
        SetupError, match=r"model \(nac\): model.mode=.fast. is not valid; choose one of \[.euler., .exact., .steady.\]"
    ):
        run(make_cfg("model.mode=fast"))
    (rec,) = _records(tmp_path)
    assert rec["status"] == "failed" and "mode='fast'" in rec["error"]


def test_divergence_stops_with_message_and_record(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "loss_fn", lambda task, pred, y: pred.sum() * float("nan"))
    assert torch.isnan(torch.tensor(run(make_cfg())))
    (rec,) = _records(tmp_path)
    assert rec["status"] == "diverged" and "loss became nan" in rec["error"]


def test_interrupt_keeps_earlier_records_and_records_itself(make_cfg, tmp_path, monkeypatch):
    run(make_cfg("seed=0"))
    before = json.loads(Path(_records(tmp_path)[0]["_path"]).read_text())

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner_module, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(make_cfg("seed=1"))
    records = {r["seed"]: r for r in _records(tmp_path)}
    assert records[1]["status"] == "interrupted"
    assert {k: v for k, v in records[0].items() if k != "_path"} == before
    assert not list((tmp_path / "records").rglob("*.tmp"))


def test_paper_protocol_record_names_its_fold(make_cfg, tmp_path):
    run(make_cfg("protocol=paper", "protocol.fold=3"))
    (rec,) = _records(tmp_path)
    assert rec["protocol"] == "paper" and rec["fold"] == 3 and "fold3" in Path(rec["_path"]).name


def test_peak_memory_is_named_and_positive():
    memory = PeakMemory(torch.device("cpu"))
    memory.reset()
    _ = torch.ones(4096, 4096)  # 64 MiB
    mb, method = memory.read()
    assert mb > 64 and method.startswith("cpu_peak_rss")


def test_last_valid_step_picks_each_samples_last_valid_output():
    seq = torch.arange(12.0).view(2, 3, 2)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert last_valid_step(seq, mask).tolist() == [[2.0, 3.0], [10.0, 11.0]]
    assert last_valid_step(seq, None).tolist() == [[4.0, 5.0], [10.0, 11.0]]


@pytest.mark.slow
def test_cli_unknown_model_lists_choices(tmp_path):
    proc = run_cli("experiment=none", "model=transformr", cwd=tmp_path)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "Available options in 'model'" in out and "nac_official" in out


@pytest.mark.slow
def test_cli_bad_value_is_one_clear_line(tmp_path):
    proc = run_cli("experiment=none", "model.mode=fast", f"paths.output_root={tmp_path}", cwd=tmp_path)
    assert proc.returncode == 2
    assert "nac-bench: error:" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_cli_default_benchmark_runs_every_model_and_prints_table(tmp_path):
    """The no-argument command, with a tiny budget: every model of the default sweep, one table."""
    proc = run_cli(
        "experiment=default",
        "trainer.epochs=1",
        "trainer.limit_train_batches=2",
        "dataset.builder.limit=150",
        "trainer.latency_samples=2",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    tables = list((tmp_path / "multirun").rglob("table.csv"))
    assert len(tables) == 1
    table = pd.read_csv(tables[0])
    every_model = {p.stem for p in (ROOT / "configs" / "model").glob("*.yaml")}
    assert set(table.model) == every_model  # the default benchmark lists every model
    assert (table.runs == "1/1").all()
    assert "| nac_official" in proc.stdout
    # two jobs at a time (the joblib launcher), each with one torch thread: no collapse on a busy machine
    assert "Joblib.Parallel(n_jobs=2," in proc.stdout + proc.stderr
    records = _records(tmp_path)
    assert len(records) == len(every_model) and {r["config"]["threads"] for r in records} == {1}
    assert all("1 threads" in r["device"] for r in records)


def test_bare_command_gets_the_default_benchmark_and_any_override_one_run():
    assert with_default_experiment(["nac-bench"]) == ["nac-bench", "experiment=default"]
    assert with_default_experiment(["nac-bench", "-m", "--cfg", "job"])[-1] == "experiment=default"
    assert with_default_experiment(["nac-bench", "model=cfc"]) == ["nac-bench", "model=cfc"]
    assert with_default_experiment(["nac-bench", "-m", "seed=0,1"]) == ["nac-bench", "-m", "seed=0,1"]


@pytest.mark.slow
def test_cli_with_a_model_override_is_one_run(tmp_path):
    proc = run_cli(
        "model=cfc",
        "trainer.epochs=1",
        "trainer.limit_train_batches=2",
        "dataset.builder.limit=100",
        "trainer.latency_samples=2",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (rec,) = _records(tmp_path)
    assert rec["model"] == "cfc" and not (tmp_path / "multirun").exists()
    assert "name" not in rec["config"]["model"]  # the CLI's model= choice names the run (model_name)
    assert [p.parent.name for p in (tmp_path / "records").rglob("*.json")] == ["cfc"]  # records/<ds>/<proto>/cfc


def test_finished_run_is_skipped_unless_forced(make_cfg, tmp_path, monkeypatch):
    run(make_cfg("seed=0"))
    (first,) = _records(tmp_path)

    def trains(*args, **kwargs):
        raise RuntimeError("trained again")

    monkeypatch.setattr(runner_module, "fit", trains)
    assert run(make_cfg("seed=0")) == pytest.approx(first["val"]["accuracy"])  # skipped: fit never called
    assert json.loads(Path(first["_path"]).read_text())["finished"] == first["finished"]
    with pytest.raises(RuntimeError, match="trained again"):  # forced: training really runs again
        run(make_cfg("seed=0", "force=true"))


def test_failed_run_is_not_skipped(make_cfg, tmp_path):
    with pytest.raises(SetupError):
        run(make_cfg("model.mode=fast"))
    with pytest.raises(SetupError):  # a failed record does not count as done: the run is attempted again
        run(make_cfg("model.mode=fast"))


def test_record_from_other_commit_is_rerun(make_cfg, tmp_path, monkeypatch):
    run(make_cfg("seed=0"))
    (first,) = _records(tmp_path)
    monkeypatch.setattr(runner_module.env, "git_commit", lambda: "another-commit")
    run(make_cfg("seed=0"))
    (second,) = _records(tmp_path)
    assert second["git_commit"] == "another-commit" and second["_path"] == first["_path"]


def test_wandb_offline_gives_each_run_its_own_finished_run(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run(make_cfg("logger=wandb", "seed=0"))
    run(make_cfg("logger=wandb", "seed=1"))  # a second run in the same process (as in a multirun)
    runs = sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 2 and all(p.stat().st_size > 0 for p in runs)


def test_wandb_tracker_logs_history_and_record_metrics(make_cfg, tmp_path, monkeypatch):
    """With a stand-in wandb module: one init and one finish per run, every epoch logged."""
    import sys
    import types

    calls = {"init": [], "log": [], "finish": [], "summary": {}}

    class FakeRun:
        summary = types.SimpleNamespace(update=lambda d: calls["summary"].update(d))

        def log(self, metrics, step=None):
            calls["log"].append((step, metrics))

        def finish(self, exit_code=0):
            calls["finish"].append(exit_code)

    fake = types.SimpleNamespace(init=lambda **kw: calls["init"].append(kw) or FakeRun())
    monkeypatch.setitem(sys.modules, "wandb", fake)
    run(make_cfg("logger=wandb", "seed=0"))
    (rec,) = _records(tmp_path)
    assert len(calls["init"]) == 1 and calls["finish"] == [0]
    assert calls["init"][0]["config"]["seed"] == 0 and calls["init"][0]["mode"] == "offline"
    assert [step for step, _ in calls["log"]] == [1, 2]
    assert calls["log"][-1][1]["val_accuracy"] == rec["history"][-1]["val_accuracy"]
    assert calls["summary"]["test/accuracy"] == rec["test"]["accuracy"] and calls["summary"]["status"] == "ok"


def test_bad_optimizer_names_the_trainer_group(make_cfg, tmp_path):
    with pytest.raises(SetupError, match=r"trainer \(optimizer/scheduler\): .*torch\.optim\.Adamm"):
        run(make_cfg("trainer.optimizer._target_=torch.optim.Adamm"))


def test_bad_protocol_names_the_dataset_group_and_choices(make_cfg, tmp_path):
    with pytest.raises(SetupError, match=r"dataset \(digits, leaky\): .*\['clean', 'paper'\]"):
        run(make_cfg("protocol.name=leaky"))


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.epochs=0", "trainer.epochs=0 is not valid; use an integer >= 1"),
        ("trainer.epochs=-3", "trainer.epochs=-3 is not valid; use an integer >= 1"),
        ("trainer.batch_size=0", "trainer.batch_size=0 is not valid; use an integer >= 1"),
        ("trainer.eval_batch_size=2.5", "trainer.eval_batch_size=2.5 is not valid; use an integer >= 1"),
        ("trainer.optimizer.lr=0", "trainer.optimizer.lr=0 is not valid; use a number > 0"),
        ("trainer.optimizer.weight_decay=-1", "trainer.optimizer.weight_decay=-1 is not valid; use a number >= 0"),
        ("trainer.grad_clip=0", "trainer.grad_clip=0 is not valid; use a number > 0 or null"),
        ("trainer.early_stopping_patience=-1", "trainer.early_stopping_patience=-1 is not valid; use an integer >= 0"),
        ("trainer.limit_train_batches=0", "trainer.limit_train_batches=0 is not valid; use an integer >= 1 or null"),
        ("trainer.num_workers=-1", "trainer.num_workers=-1 is not valid; use an integer >= 0"),
        ("trainer.latency_samples=-1", "trainer.latency_samples=-1 is not valid; use an integer >= 0"),
        ("trainer.progress=maybe", "trainer.progress='maybe' is not valid; use true or false"),
        ("threads=0", "threads=0 is not valid; use an integer >= 1 or null"),
    ],
)
def test_bad_trainer_setting_stops_before_anything_runs(make_cfg, tmp_path, override, message):
    with pytest.raises(SetupError, match=f"^{message}"):
        run(make_cfg(override))
    assert not (tmp_path / "records").exists()  # nothing ran, so no record


def test_bad_scheduler_setting_stops_before_training(make_cfg, tmp_path, monkeypatch):
    def trains(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr(runner_module, "fit", trains)
    with pytest.raises(SetupError, match=r"trainer \(optimizer/scheduler\): Factor should be < 1.0"):
        run(make_cfg("trainer.scheduler.factor=2"))
    assert [r["status"] for r in _records(tmp_path)] == ["failed"]


def test_every_shipped_experiment_passes_the_settings_check():
    from hydra import compose, initialize_config_dir
    from hydra.errors import MissingConfigException
    from omegaconf import OmegaConf

    from nac.harness.settings import validate_settings

    checked = 0
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        for experiment in sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml")):
            try:
                cfg = compose("config", overrides=[f"experiment={experiment}"])
            except MissingConfigException as err:  # an optional sweeper plugin (optuna) not installed
                assert "hydra/sweeper" in str(err)
                continue
            validate_settings(OmegaConf.to_container(cfg, resolve=True))
            checked += 1
    assert checked >= 10


@pytest.mark.slow
@pytest.mark.parametrize("override", ["trainer.epochs=0", "trainer.batch_size=0"])
def test_cli_bad_trainer_setting_is_one_line_exit_2_and_no_record(tmp_path, override):
    proc = run_cli("experiment=none", override, f"paths.output_root={tmp_path}", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"nac-bench: error: {override} is not valid; use an integer >= 1"]
    assert not (tmp_path / "records").exists()


TINY_CLI = [
    "experiment=none",
    "model=lstm",
    "trainer.epochs=2",
    "trainer.limit_train_batches=3",
    "dataset.builder.limit=200",
    "trainer.progress=false",
    "trainer.latency_samples=2",
]


@pytest.mark.slow
def test_cli_diverged_single_run_exits_3_with_one_line(tmp_path):
    proc = run_cli(*TINY_CLI, "trainer.optimizer.lr=1e30", f"paths.output_root={tmp_path}", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("nac-bench: error: run diverged: training loss became nan")
    (rec,) = _records(tmp_path)
    assert rec["status"] == "diverged" and rec["epochs_run"] == 0


@pytest.mark.slow
def test_cli_sweep_goes_on_past_a_diverged_run_and_its_table_says_so(tmp_path):
    proc = run_cli("-m", *TINY_CLI, "trainer.optimizer.lr=1e30,1e-3", f"paths.output_root={tmp_path}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(r["status"] for r in _records(tmp_path)) == ["diverged", "ok"]
    (table_file,) = list((tmp_path / "multirun").rglob("table.csv"))
    assert sorted(pd.read_csv(table_file).status) == ["complete", "incomplete: 1 not ok (diverged)"]


def test_progress_bar_is_not_redrawn_on_every_step(make_cfg, tmp_path, monkeypatch):
    """The loss shown in the bar is updated every step but drawn at the bar's throttled updates only."""
    import functools
    import io

    from tqdm.auto import tqdm

    screen = io.StringIO()
    shown = functools.partial(tqdm, file=screen, mininterval=3600)  # as on a terminal, one redraw an hour

    def on_a_terminal(iterable, disable=None, **kwargs):
        return shown(iterable, disable=False, **kwargs)

    monkeypatch.setattr(train_module, "tqdm", on_a_terminal)
    run(
        make_cfg(
            "model=lstm",
            "trainer.epochs=1",
            "trainer.limit_train_batches=null",
            "trainer.batch_size=8",
            "trainer.progress=true",
        )
    )
    (rec,) = _records(tmp_path)
    assert -(-rec["n_train"] // 8) >= 10  # steps
    assert screen.getvalue().count("\r") <= 3  # the first draw, the close; not one per step
