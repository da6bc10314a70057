"""The campaign runner (nac/harness/campaigns.py, scripts/campaign.py): every group composes with the
shipped configs and makes the number of runs it declares (counted from the composed sweep, not from
the declaration), records are collected only when finished and clean, bad names and dirty checkouts
get one clear line."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from nac.harness import campaigns
from nac.harness.campaigns import CAMPAIGNS, Campaign, CampaignError, Group, check_clean, collect, command, main, select
from tests.conftest import CONFIGS, ROOT, TINY

GROUPS = [(c.name, g) for c in CAMPAIGNS.values() for g in c.groups]


def _sweep_size(args: tuple[str, ...]) -> int:
    """Runs a multirun of ``args`` makes: Optuna's n_trials, else the product of the sweep lists (the
    experiment's sweeper params, overridden by the comma lists of the command line)."""
    first = [arg.split(",")[0] for arg in args]  # compose takes one value per key
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose("config", overrides=first, return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    if "n_trials" in sweeper:
        return int(sweeper.n_trials)
    params = {str(k): str(v) for k, v in (sweeper.get("params") or {}).items()}
    params.update(dict(arg.lstrip("+").split("=", 1) for arg in args))
    return math.prod(len(value.split(",")) for value in params.values())


@pytest.mark.parametrize(("campaign", "group"), GROUPS, ids=[f"{c}-{g.name}" for c, g in GROUPS])
def test_every_group_composes_and_makes_the_runs_it_declares(campaign, group):
    if (
        any("tune" in arg for arg in group.args)
        and importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None
    ):
        pytest.skip("the Optuna sweeper is an extra (pip install -e '.[optuna]')")
    assert _sweep_size(group.args) == group.runs


def test_the_sweep_count_is_an_independent_check():
    """The counter reads the configs: a wrong declaration would fail the test above."""
    assert _sweep_size(("experiment=emnist_clean", "model=lstm,cfc,transformer")) == 9
    assert _sweep_size(("experiment=emnist_clean", "model=ltc", "seed=0")) == 1
    assert _sweep_size(("experiment=bearings_clean",)) == 36  # 6 models x 3 seeds x Time kept / dropped


def test_commands_carry_the_launcher_one_thread_and_the_group_args():
    group = CAMPAIGNS["emnist"].groups[-1]
    assert command(group, python="py") == [
        "py",
        "-m",
        "nac",
        "-m",
        "hydra/launcher=local_parallel",
        "threads=1",
        "trainer.progress=false",
        "experiment=emnist_clean",
        "model=ode_rnn",
        "seed=0",
    ]


def test_unknown_names_list_the_choices(capsys):
    with pytest.raises(CampaignError, match="unknown campaign 'mnist'; choose one of: emnist, bearings, cmapss, par"):
        select("mnist")
    with pytest.raises(CampaignError, match="campaign emnist has no group lstm; its groups: authors_paper,"):
        select("emnist", ["lstm"])
    assert [g.name for g in select("emnist", ["ode_rnn", "ltc"])[1]] == ["ltc", "ode_rnn"]  # campaign order
    assert main(["emnist", "--only", "nope", "--dry-run"]) == 2
    assert capsys.readouterr().err.startswith("campaign: campaign emnist has no group nope")


def test_a_dirty_checkout_is_refused_with_the_worktree_command(monkeypatch, capsys):
    monkeypatch.setattr(campaigns, "git_commit", lambda root=None: "abcdef0123456789-dirty-1234")
    with pytest.raises(CampaignError, match=r"git worktree add ../camp-abcdef0 abcdef0"):
        check_clean()
    ran = []
    monkeypatch.setattr(campaigns.subprocess, "call", lambda *a, **k: ran.append(a) or 0)
    assert main(["par", "--only", "clean"]) == 2 and not ran
    assert "uncommitted code changes" in capsys.readouterr().err
    assert main(["par", "--only", "clean", "--allow-dirty"]) == 0 and len(ran) == 1
    monkeypatch.setattr(campaigns, "git_commit", lambda root=None: "abcdef0123456789")
    assert check_clean() == "abcdef0123456789"


def test_dry_run_prints_each_group_and_runs_nothing(monkeypatch, capsys):
    monkeypatch.setattr(campaigns.subprocess, "call", lambda *a, **k: pytest.fail("ran"))
    assert main(["emnist", "--only", "ltc", "ode_rnn", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()[1:]  # after the checkout line
    assert out[0] == "# ltc: 1 runs" and out[2] == "# ode_rnn: 1 runs"
    assert out[1].endswith(
        "-m nac -m hydra/launcher=local_parallel threads=1 trainer.progress=false "
        "experiment=emnist_clean model=ltc model.compile_solver=true seed=0"
    )


def test_a_failing_group_stops_the_campaign_and_says_how_to_resume(monkeypatch, capsys):
    monkeypatch.setattr(campaigns, "git_commit", lambda root=None: "abcdef0123456789")
    calls = []
    monkeypatch.setattr(campaigns.subprocess, "call", lambda cmd, **k: calls.append(cmd) or 3)
    assert main(["par"]) == 3 and len(calls) == 1
    assert "group paper exited with 3; the same command resumes it" in capsys.readouterr().err


def _record(root, rel, status="ok", commit="a" * 40, **extra):
    path = root / "records" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"status": status, "git_commit": commit, **extra}))
    return path


def test_collect_copies_finished_clean_records_only_and_never_overwrites(tmp_path):
    out, dest = tmp_path / "out", tmp_path / "dest"
    _record(out, "emnist/clean/lstm/seed0-a.json")
    _record(out, "emnist/clean/lstm/seed1-b.json", status="failed")
    _record(out, "emnist/clean/lstm/seed2-c.json", commit="a" * 40 + "-dirty-123")
    _record(out, "par/clean/lstm/seed0-d.json")  # another dataset
    _record(out, "emnist/clean/cfc/seed0-g.json", status="diverged")  # a result: tables count it
    _record(out, "emnist/clean/cfc/seed1-h.json", commit="unknown")  # made outside git: untraceable
    (out / "records/emnist/clean/lstm/seed0-a.ckpt.pt").write_bytes(b"checkpoint")
    (out / "records/emnist/clean/lstm/broken.json").write_text("{")
    same = _record(out, "emnist/paper/nac/seed0-fold0-e.json")
    changed = _record(out, "emnist/paper/nac/seed0-fold1-f.json")
    (dest / "emnist/paper/nac").mkdir(parents=True)
    (dest / "emnist/paper/nac/seed0-fold0-e.json").write_bytes(same.read_bytes())
    (dest / "emnist/paper/nac/seed0-fold1-f.json").write_text("{}")
    copied, clashes = collect(out, ["emnist"], dest)
    assert copied == [dest / "emnist/clean/cfc/seed0-g.json", dest / "emnist/clean/lstm/seed0-a.json"]
    assert (dest / "emnist/clean/lstm/seed0-a.json").read_bytes() == (
        out / "records/emnist/clean/lstm/seed0-a.json"
    ).read_bytes()
    assert clashes == [
        f"{dest / 'emnist/paper/nac/seed0-fold1-f.json'} exists and differs from {changed}: left as it is"
    ]
    assert (dest / "emnist/paper/nac/seed0-fold1-f.json").read_text() == "{}"
    assert sorted(p.name for p in dest.rglob("*") if p.is_file()) == [
        "seed0-a.json",
        "seed0-fold0-e.json",
        "seed0-fold1-f.json",
        "seed0-g.json",
    ]


def test_list_names_every_campaign_and_group(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for _campaign, group in GROUPS:
        assert f"  {group.name:<16} {group.runs:>3} runs  nac-bench " in out
    assert out.count("report: ") == len(CAMPAIGNS)


@pytest.mark.slow
def test_a_tiny_campaign_runs_end_to_end(tmp_path, monkeypatch):
    tiny = Campaign(
        "tiny", "one tiny run", ("digits",), (Group("g", ("experiment=none", "model=lstm", "seed=0", *TINY), 1),), "-"
    )
    monkeypatch.setitem(CAMPAIGNS, "tiny", tiny)
    out = tmp_path / "out"
    assert main(["tiny", "--allow-dirty", "--output-root", str(out)]) == 0
    (record,) = [p for p in (out / "records").rglob("*.json")]
    data = json.loads(record.read_text())
    assert (data["status"], data["model"], data["seed"], data["epochs_run"]) == ("ok", "lstm", 0, 2)
    # the same command again: the finished run is skipped, not run twice
    assert main(["tiny", "--allow-dirty", "--output-root", str(out)]) == 0
    assert json.loads(record.read_text())["finished"] == data["finished"]


def test_the_script_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "campaign.py"), "nope"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 2 and result.stderr.strip().startswith("campaign: unknown campaign 'nope'")


def test_the_script_runs_the_code_of_its_own_checkout(tmp_path):
    """From another checkout (a worktree), the script must import and run that checkout's code, not the
    installed copy's: here a copy of the package, whose root the dry run names."""
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "nac", tree / "nac", ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "campaign.py", tree / "scripts")
    result = subprocess.run(
        [sys.executable, str(tree / "scripts" / "campaign.py"), "par", "--dry-run"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"# checkout {tree.resolve()} at unknown;")  # not a git checkout


def test_collect_leaves_out_an_attempt_kept_beside_an_ok_record(tmp_path):
    """A later, worse attempt sits beside its run's ok record; the reports count the ok record only,
    and so does collect. An attempt whose own record is gone stands for its run and is collected."""
    out, dest = tmp_path / "out", tmp_path / "dest"
    _record(out, "emnist/clean/lstm/seed0-a.json")
    _record(out, "emnist/clean/lstm/seed0-a.attempt-20261130T010203Z-77.json", status="diverged")
    _record(out, "emnist/clean/lstm/seed1-b.attempt-20261130T010203Z-78.json", status="diverged")
    copied, clashes = collect(out, ["emnist"], dest)
    assert copied == [
        dest / "emnist/clean/lstm/seed0-a.json",
        dest / "emnist/clean/lstm/seed1-b.attempt-20261130T010203Z-78.json",
    ]
    assert clashes == []


def test_collect_takes_the_tuning_trials_to_their_own_folder(tmp_path, capsys):
    out = tmp_path / "out"
    _record(out, "cmapss/clean/nac/seed0-a.json")
    trial = out / "tune" / "records" / "cmapss/clean/nac/seed0-t.json"
    trial.parent.mkdir(parents=True)
    trial.write_text(json.dumps({"status": "ok", "git_commit": "b" * 40, "tag": "tune"}))
    dest, tune = tmp_path / "records", tmp_path / "tune_records"
    args = ["cmapss", "--collect", "--output-root", str(out), "--dest", str(dest), "--tune-dest", str(tune)]
    assert main(args) == 0
    assert (dest / "cmapss/clean/nac/seed0-a.json").exists() and (tune / "cmapss/clean/nac/seed0-t.json").exists()
    assert not (dest / "cmapss/clean/nac/seed0-t.json").exists()
    printed = capsys.readouterr().out
    assert "2 record(s) copied" in printed
    # the report command it suggests reads what was just collected, and predictions where the runs wrote them
    assert f"--records {dest} " in printed and f"--tune-records {tune}" in printed
    assert f"--predictions {out}/records" in printed and "<" not in printed
    assert (
        main(
            [
                "emnist",
                "--collect",
                "--output-root",
                str(out),
                "--dest",
                str(dest),
                "--tune-dest",
                str(tmp_path / "none"),
            ]
        )
        == 0
    )
    assert not (tmp_path / "none").exists()  # E-MNIST has no tuning
