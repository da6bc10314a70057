"""Campaigns: the groups of runs behind each reproduction report, as data, and a runner for them.

A campaign is a list of groups; a group is one ``nac-bench`` multirun (its arguments) that the
report reads. ``scripts/campaign.py <campaign>`` runs the groups one after another, each as a
resumable sweep (finished runs are skipped, stopped runs resume from their epoch checkpoint), then
``--collect`` copies the finished records into ``results/records`` for ``scripts/make_report.py``.

Records name the commit that made them; a run from a checkout with uncommitted code changes is
marked ``-dirty`` and never enters a report. So the runner refuses a dirty checkout unless told
otherwise: launch long campaigns from a ``git worktree`` of a committed revision and keep editing
in your own checkout.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nac.harness.environment import PROJECT_ROOT, git_commit
from nac.harness.records import read_record, run_files


@dataclass(frozen=True)
class Group:
    """One ``nac-bench`` multirun of a campaign: its name, its arguments and how many runs it makes."""

    name: str
    args: tuple[str, ...]
    runs: int
    note: str = ""


@dataclass(frozen=True)
class Campaign:
    """The groups behind one report, the datasets their records fall under and the report command."""

    name: str
    title: str
    datasets: tuple[str, ...]
    groups: tuple[Group, ...]
    report: str
    note: str = ""
    #: where the Optuna trials' records go (``paths.records_dir`` of the tuning experiments), relative to the
    #: output root; ``--collect`` copies them to ``results/tune_records``
    tune_records: str | None = None


def _cmapss_groups() -> tuple[Group, ...]:
    groups = []
    for subset in ("FD001", "FD002", "FD003", "FD004"):
        common = ("experiment=cmapss_full", f"dataset.builder.subset={subset}")
        groups.append(Group(subset, (*common, "model=nac,nac_official,lstm,cfc,transformer,cnn1d"), 18))
        groups.append(
            Group(f"{subset}_ltc", (*common, "model=ltc", "model.compile_solver=true"), 3, "LTC, compiled solver")
        )
    groups.append(
        Group("tune_nac", ("experiment=cmapss_tune_nac", "hydra.sweeper.n_jobs=1"), 20, "Optuna, needs .[optuna]")
    )
    groups.append(
        Group(
            "tune_transformer",
            ("experiment=cmapss_tune", "model=transformer", "hydra.sweeper.n_jobs=1"),
            20,
            "Optuna; the strongest FD001 baseline by validation RMSE in our runs (check yours first)",
        )
    )
    return tuple(groups)


CAMPAIGNS: dict[str, Campaign] = {
    c.name: c
    for c in (
        Campaign(
            "emnist",
            "E-MNIST: the authors' pipeline and the paper variant under both protocols, and the baselines",
            ("emnist",),
            (
                Group("authors_paper", ("experiment=emnist_authors",), 5),
                Group("authors_exact", ("experiment=emnist_authors", "model.mode=exact"), 5, "the authors' exact mode"),
                Group(
                    "authors_steady", ("experiment=emnist_authors", "model.mode=steady"), 5, "the authors' steady mode"
                ),
                Group("authors_clean", ("experiment=emnist_authors_clean",), 3),
                Group("nac_paper", ("experiment=emnist_paper", "model=nac"), 5),
                Group("nac_clean", ("experiment=emnist_clean", "model=nac"), 3),
                Group("baselines", ("experiment=emnist_clean", "model=lstm,cfc,transformer"), 9),
                Group("ltc", ("experiment=emnist_clean", "model=ltc", "model.compile_solver=true", "seed=0"), 1),
                Group("ode_rnn", ("experiment=emnist_clean", "model=ode_rnn", "seed=0"), 1),
            ),
            "python scripts/make_report.py emnist",
            "about 17 CPU-hours at one thread per run (LTC and ODE-RNN: 1-2 hours each)",
        ),
        Campaign(
            "bearings",
            "Bearings: the paper's setup, clean with and without Time, and clean without look-ahead",
            ("bearings",),
            (
                Group("paper", ("experiment=bearings_paper", "trainer.save_predictions=true"), 30),
                Group("clean", ("experiment=bearings_clean", "trainer.save_predictions=true"), 36),
                Group("clean_causal", ("experiment=bearings_clean_causal", "trainer.save_predictions=true"), 36),
            ),
            "python scripts/make_report.py bearings",
            "the Time-only references come from scripts/bearing_time_reference.py",
        ),
        Campaign(
            "cmapss",
            "C-MAPSS FD001-FD004 at the full budget, and the FD001 tuning",
            ("cmapss",),
            _cmapss_groups(),
            "python scripts/make_report.py cmapss --records <records> --predictions <output root>/records "
            "--tune-records <tune records>",
            "the tuned re-runs depend on the trials: the report prints their commands",
            tune_records="tune/records",
        ),
        Campaign(
            "par",
            "Person Activity (person A): paper and clean protocols, attention causal and not",
            ("par",),
            (
                Group("paper", ("experiment=par_paper_a",), 25),
                Group("clean", ("experiment=par_clean",), 15),
                Group("clean_noncausal", ("experiment=par_clean_noncausal",), 9),
            ),
            "python scripts/make_tables.py --records results/records --dataset par --out-dir results "
            "--name par_person_a",
        ),
    )
}

#: arguments every campaign run gets: Hydra's joblib launcher (NAC_JOBS at a time), one torch thread, no bars
RUN_ARGS = ("hydra/launcher=local_parallel", "threads=1", "trainer.progress=false")


#: record statuses of a finished run (a diverged run is a result, and tables count it); failed runs are not
FINISHED = ("ok", "diverged")


class CampaignError(ValueError):
    """A campaign or group name that does not exist, or a checkout the runner will not run from."""


def select(campaign: str, only: Sequence[str] = ()) -> tuple[Campaign, list[Group]]:
    """The campaign and its groups (``only``: these, in the campaign's order); a clear error on unknown names."""
    if campaign not in CAMPAIGNS:
        raise CampaignError(f"unknown campaign {campaign!r}; choose one of: {', '.join(CAMPAIGNS)}")
    found = CAMPAIGNS[campaign]
    names = [g.name for g in found.groups]
    unknown = [name for name in only if name not in names]
    if unknown:
        raise CampaignError(f"campaign {campaign} has no group {', '.join(unknown)}; its groups: {', '.join(names)}")
    return found, [g for g in found.groups if not only or g.name in only]


def command(group: Group, python: str = sys.executable) -> list[str]:
    """The ``nac-bench`` multirun of a group: ``python -m nac -m <launcher, threads> <group args>``."""
    return [python, "-m", "nac", "-m", *RUN_ARGS, *group.args]


def check_clean(root: Path = PROJECT_ROOT) -> str:
    """The checkout's commit; :class:`CampaignError` when its code has uncommitted changes."""
    commit = git_commit(root)
    if "-dirty" in commit:
        short = commit.split("-dirty")[0][:7]
        raise CampaignError(
            f"the checkout at {root} has uncommitted code changes, so every record would be marked -dirty and "
            "left out of the reports. Commit them, or run from a clean worktree: "
            f"git worktree add ../camp-{short} {short} && cd ../camp-{short} (or pass --allow-dirty for a try-out)"
        )
    return commit


def collect(
    output_root: Path, datasets: Sequence[str], dest: Path, records: str = "records"
) -> tuple[list[Path], list[str]]:
    """Copy the finished records (status ok or diverged, a known clean commit) of ``datasets`` from
    ``<output_root>/<records>`` to ``dest`` at the same relative path, one file per run as the reports count
    it (an attempt kept beside an ok record is left out: ``records.run_files``). Returns the files copied and one
    line per record left out because ``dest`` already has another file at its path (never overwritten)."""
    source = output_root / records
    copied, clashes = [], []
    for dataset in datasets:
        for path in sorted(run_files(source / dataset)):
            record = read_record(path)
            if record is None:
                continue
            commit = str(record.get("git_commit") or "unknown")
            if record.get("status") not in FINISHED or "-dirty" in commit or commit == "unknown":
                continue
            target = dest / path.relative_to(source)
            if target.exists():
                if target.read_bytes() != path.read_bytes():
                    clashes.append(f"{target} exists and differs from {path}: left as it is")
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            copied.append(target)
    return copied, clashes


def report_command(campaign: Campaign, output_root: str, records: str, tune_records: str) -> str:
    """The campaign's report command with its places filled: collected records, tuning records, output root."""
    return (
        campaign.report.replace("<output root>", output_root)
        .replace("<tune records>", tune_records)
        .replace("<records>", records)
    )


def describe(campaign: Campaign) -> str:
    """The campaign's groups, one line each, with their commands."""
    lines = [f"{campaign.name}: {campaign.title}" + (f" ({campaign.note})" if campaign.note else "")]
    for group in campaign.groups:
        note = f"  # {group.note}" if group.note else ""
        lines.append(f"  {group.name:<16} {group.runs:>3} runs  nac-bench {shlex.join(group.args)}{note}")
    lines.append(f"  report: {campaign.report}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``campaign.py <campaign> [--only G ...] [--dry-run] [--collect] [--list]``; exit 2 with one line on bad input."""
    import argparse
    import os

    parser = argparse.ArgumentParser(
        description="Run the groups of runs behind a reproduction report, one resumable sweep after another "
        "(NAC_JOBS runs at a time, one thread each), and collect their records."
    )
    parser.add_argument("campaign", nargs="?", help=f"one of: {', '.join(CAMPAIGNS)}")
    parser.add_argument("--only", nargs="+", default=(), metavar="GROUP", help="run only these groups")
    parser.add_argument("--list", action="store_true", help="list the campaigns and their groups, run nothing")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument(
        "--collect",
        action="store_true",
        help="copy the finished records (ok or diverged, clean commit) from <output root>/records to --dest; "
        "run nothing",
    )
    parser.add_argument(
        "--output-root", default=os.environ.get("NAC_OUTPUT_ROOT", "runs"), help="NAC_OUTPUT_ROOT (default: runs)"
    )
    parser.add_argument("--dest", default="results/records", help="where --collect copies records")
    parser.add_argument(
        "--tune-dest", default="results/tune_records", help="where --collect copies tuning trials' records"
    )
    parser.add_argument("--allow-dirty", action="store_true", help="run from a checkout with uncommitted code")
    args = parser.parse_args(argv)
    if args.list or args.campaign is None:
        print("\n\n".join(describe(c) for c in CAMPAIGNS.values()))
        return 0
    try:
        found, groups = select(args.campaign, args.only)
        if args.collect:
            copied, clashes = collect(Path(args.output_root), found.datasets, Path(args.dest))
            if found.tune_records:
                more = collect(Path(args.output_root), found.datasets, Path(args.tune_dest), found.tune_records)
                copied, clashes = copied + more[0], clashes + more[1]
            for path in copied:
                print(f"new {path}")
            for line in clashes:
                print(f"campaign: {line}", file=sys.stderr)
            report = report_command(found, args.output_root, args.dest, args.tune_dest)
            print(f"{len(copied)} record(s) copied; then: {report}")
            return 0
        commands = [command(group) for group in groups]
        if args.dry_run:
            print(f"# checkout {PROJECT_ROOT} at {git_commit()[:12]}; output under {args.output_root}")
            for group, cmd in zip(groups, commands):
                print(f"# {group.name}: {group.runs} runs" + (f" ({group.note})" if group.note else ""))
                print(shlex.join(cmd))
            return 0
        commit = check_clean() if not args.allow_dirty else git_commit()
    except CampaignError as err:
        print(f"campaign: {err}", file=sys.stderr)
        return 2
    # the runs import this checkout's code (python -m nac from its root, which leads sys.path)
    env = {**os.environ, "NAC_OUTPUT_ROOT": args.output_root, "PYTHONPATH": str(PROJECT_ROOT)}
    print(
        f"campaign {found.name}: checkout {PROJECT_ROOT} at {commit[:12]}, {len(groups)} group(s), "
        f"output under {args.output_root}"
    )
    for group, cmd in zip(groups, commands):
        print(f"== {group.name}: {group.runs} runs: {shlex.join(cmd[2:])}", flush=True)
        try:
            code = subprocess.call(cmd, env=env, cwd=PROJECT_ROOT)
        except KeyboardInterrupt:
            print("campaign: interrupted; finished runs are kept, the same command resumes", file=sys.stderr)
            return 130
        if code != 0:
            print(f"campaign: group {group.name} exited with {code}; the same command resumes it", file=sys.stderr)
            return code
    print(f"done. Collect: python scripts/campaign.py {found.name} --collect --output-root {args.output_root}")
    print(f"then: {report_command(found, args.output_root, args.dest, args.tune_dest)}")
    return 0
