"""Reproduction reports: a Markdown file and a PNG of learning curves per benchmark, from run records.

    python scripts/make_report.py emnist --records results/records --out results/reproduction_emnist.md

A report has fixed groups (:class:`GroupSpec`): the runs of one experiment for one model, found in the
records by dataset, protocol, model and input mode. For each group it gives mean ± sample std (ddof 1)
and the Student-t 95 % interval of the mean (:func:`nac.harness.tables.summarize`), the status and the
paper's figure where like for like (:func:`nac.harness.tables.summary_table`); a plain verdict on the
paper's figure (:func:`verdict`); ``paper`` − ``clean`` for the same model and input with a Welch
interval (:func:`welch_interval`); validation-accuracy learning curves; and provenance: commits, data
digest, the command (the experiment plus the record's config differences from that experiment's
composed config), dates and training time.

Runs of one group made with different code are pooled (the provenance lists the commits). Runs of other
settings (say a smoke run with fewer epochs) are listed apart and left out of the verdict, the
differences and the curves.

The bearings report (``make_report.py bearings``) is in :mod:`nac.harness.report_bearings`, the C-MAPSS
report in :mod:`nac.harness.report_cmapss`; both build on the groups and statistics here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from nac.harness.environment import PROJECT_ROOT
from nac.harness.tables import (
    CONFIDENCE,
    PAIRED_LEGEND,
    PAPER_FIGURES,
    Summary,
    _get,
    paired_comparison,
    records_frame,
    short_commit,
    summarize,
    summary_table,
    to_markdown,
)

#: config keys that do not change what a run computes or are swept (seed, fold): left out of the command
IGNORED_KEYS = (
    "paths",
    "force",
    "logger",
    "trainer.progress",
    "trainer.save_predictions",
    "seed",
    "protocol.fold",
    "hydra",
    "model.name",  # records made before the model configs dropped it (the name is the model= choice)
)
CONFIGS_DIR = PROJECT_ROOT / "configs"
#: what a config key a record lacks meant when it was made (the key was added later with this default)
ABSENT_MEANS: dict[str, Any] = {"dataset.causal": False}


@dataclass(frozen=True)
class GroupSpec:
    """One group of a report: the runs of ``nac-bench experiment=<experiment> model=<model> <where>``.

    ``expected``: the seeds (clean protocol) or folds (paper) the experiment runs. ``input_mode``: the
    E-MNIST builder's input mode of its records (None: not checked). ``where``: (dotted config key,
    value) pairs its records have, given to the experiment as overrides (e.g. the bearings' drop_time).
    """

    key: str
    title: str
    experiment: str
    model: str
    protocol: str
    input_mode: str | None
    expected: tuple[int, ...]
    where: tuple[tuple[str, Any], ...] = ()
    #: the group's name in paired comparisons (default: the model); two groups of one model need two labels
    label: str = ""

    def overrides(self) -> list[str]:
        """``key=value`` for each of ``where``, but a key at its default (:data:`ABSENT_MEANS`)."""
        return [f"{key}={_value(value)}" for key, value in self.where if ABSENT_MEANS.get(key, ...) != value]

    @property
    def name(self) -> str:
        return self.label or self.model


@dataclass(frozen=True)
class ReportSpec:
    """What one report covers: the dataset, its groups, the group whose runs the verdict is about,
    the (paper, clean) pairs whose difference is the selection-on-test inflation, and the groups plotted.
    ``tests``: the named test sets (name, title) of a dataset whose records hold several (the bearings;
    :func:`nac.harness.report_bearings.bearing_sections` then writes the report); ``families``: (family,
    models) per prediction panel."""

    dataset: str
    title: str
    metric: str
    groups: tuple[GroupSpec, ...]
    verdict_group: str = ""
    pairs: tuple[tuple[str, str, str], ...] = ()
    curve_groups: tuple[str, ...] = ()
    curve_baselines: int = 2
    tests: tuple[tuple[str, str], ...] = ()
    families: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: where each protocol scores its test figure and its validation figure
    test_set: tuple[tuple[str, str], ...] = ()
    val_set: tuple[tuple[str, str], ...] = ()
    #: (group, group) pairs compared run by run (same seeds or folds): the first minus the second
    paired: tuple[tuple[str, str], ...] = ()


FOLDS, SEEDS = (0, 1, 2, 3, 4), (0, 1, 2)
EMNIST = ReportSpec(
    dataset="emnist",
    title="E-MNIST: does the NAC paper's 96.64 % hold?",
    metric="accuracy",
    groups=(
        GroupSpec(
            "authors_paper",
            "NAC (nac_official), authors' pipeline, paper protocol",
            "emnist_authors",
            "nac_official",
            "paper",
            "authors",
            FOLDS,
            where=(("model.mode", "euler"),),
            label="nac_official (euler)",
        ),
        *(
            GroupSpec(
                f"authors_{mode}",
                f"NAC (nac_official), authors' pipeline in {mode} mode, paper protocol",
                "emnist_authors",
                "nac_official",
                "paper",
                "authors",
                FOLDS,
                where=(("model.mode", mode),),
                label=f"nac_official ({mode})",
            )
            for mode in ("exact", "steady")  # the authors' script's other two NAC modes
        ),
        GroupSpec(
            "authors_clean",
            "NAC (nac_official), authors' pipeline, clean protocol",
            "emnist_authors_clean",
            "nac_official",
            "clean",
            "authors",
            SEEDS,
        ),
        GroupSpec(
            "nac_paper",
            "NAC (nac, paper variant), masked input, paper protocol",
            "emnist_paper",
            "nac",
            "paper",
            "masked",
            FOLDS,
        ),
        GroupSpec(
            "nac_clean",
            "NAC (nac, paper variant), masked input, clean protocol",
            "emnist_clean",
            "nac",
            "clean",
            "masked",
            SEEDS,
        ),
        GroupSpec("lstm", "LSTM, masked input, clean protocol", "emnist_clean", "lstm", "clean", "masked", SEEDS),
        GroupSpec("cfc", "CfC, masked input, clean protocol", "emnist_clean", "cfc", "clean", "masked", SEEDS),
        GroupSpec(
            "transformer",
            "Transformer, masked input, clean protocol",
            "emnist_clean",
            "transformer",
            "clean",
            "masked",
            SEEDS,
        ),
        GroupSpec("ltc", "LTC, masked input, clean protocol", "emnist_clean", "ltc", "clean", "masked", (0,)),
        GroupSpec(
            "ode_rnn", "ODE-RNN, masked input, clean protocol", "emnist_clean", "ode_rnn", "clean", "masked", (0,)
        ),
    ),
    verdict_group="authors_paper",
    pairs=(
        ("authors_paper", "authors_clean", "authors' pipeline (nac_official, authors' input)"),
        ("nac_paper", "nac_clean", "paper variant (nac, masked input)"),
    ),
    curve_groups=(
        "authors_paper",
        "authors_exact",
        "authors_steady",
        "authors_clean",
        "nac_paper",
        "nac_clean",
        "lstm",
        "cfc",
        "transformer",
        "ltc",
        "ode_rnn",
    ),
    test_set=(("paper", "the held-out fold of the pooled 70k"), ("clean", "the official 10k test set")),
    val_set=(("paper", "the same held-out fold (val = test)"), ("clean", "a stratified split of the official 60k")),
    paired=(
        *(("nac_clean", baseline) for baseline in ("lstm", "cfc", "transformer", "ltc", "ode_rnn")),
        ("authors_exact", "authors_paper"),
        ("authors_steady", "authors_paper"),
    ),
)


def reports() -> dict[str, ReportSpec]:
    """The reports ``make_report.py`` writes from this module (C-MAPSS has its own: report_cmapss)."""
    from nac.harness.report_bearings import BEARINGS

    return {"emnist": EMNIST, "bearings": BEARINGS}


# ---------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Difference:
    """Mean of ``a`` minus mean of ``b`` with a Welch interval (``low``/``high``/``df`` None when a side
    has fewer than two values)."""

    n_a: int
    n_b: int
    diff: float | None
    low: float | None
    high: float | None
    df: float | None


def _finite(values: Iterable[float]) -> np.ndarray:
    array = np.asarray(pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce"), dtype=float)
    return array[np.isfinite(array)]


def welch_interval(a: Iterable[float], b: Iterable[float], confidence: float = CONFIDENCE) -> Difference:
    """mean(a) − mean(b) and its Welch–Satterthwaite Student-t interval (unequal variances, unpaired runs)."""
    x, y = _finite(a), _finite(b)
    if len(x) == 0 or len(y) == 0:
        return Difference(len(x), len(y), None, None, None, None)
    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return Difference(len(x), len(y), diff, None, None, None)
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    if va + vb == 0.0:
        return Difference(len(x), len(y), diff, diff, diff, None)
    df = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
    half = float(stats.t.ppf((1 + confidence) / 2, df)) * math.sqrt(va + vb)
    return Difference(len(x), len(y), diff, diff - half, diff + half, float(df))


def verdict(summary: Summary, paper: float, gaps: Sequence[str]) -> str:
    """The plain sentence on the paper's figure. Rule: reproduced when ``paper`` lies inside the Student-t
    95 % interval of the mean (bounds included); no verdict when the runs are not like for like (``gaps``)
    or fewer than two."""
    figure = f"{paper:.2f} %"
    if summary.n == 0:
        return f"No verdict on {figure}: not run yet."
    runs = (
        f"{summary.mean:.2f} %"
        + (f" ± {summary.std:.2f}" if summary.std is not None else "")
        + f" over {summary.n} run{'s' if summary.n > 1 else ''}"
    )
    if gaps:
        return (
            f"No verdict on {figure} yet: the runs are not like for like with the paper ({'; '.join(gaps)}). "
            f"So far: {runs}."
        )
    if summary.low is None:
        return f"No verdict on {figure}: a single run has no interval ({runs})."
    interval = f"95 % CI of the mean [{summary.low:.2f}, {summary.high:.2f}]"
    if summary.low <= paper <= summary.high:
        return f"{figure} is reproduced: it lies inside the {interval} ({runs})."
    gap = paper - summary.mean
    low, high = paper - summary.high, paper - summary.low
    if gap > 0:
        return (
            f"{figure} is not reproduced: missed by {gap:.2f} points (95 % CI [{low:.2f}, {high:.2f}]; "
            f"runs: {runs}, {interval})."
        )
    return (
        f"{figure} is not reproduced: exceeded by {-gap:.2f} points (95 % CI [{-high:.2f}, {-low:.2f}]; "
        f"runs: {runs}, {interval})."
    )


# ---------------------------------------------------------------- commands


def _flat(config: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _ignored(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in IGNORED_KEYS)


@cache
def _composed(experiment: str, model: str, overrides: tuple[str, ...] = ()) -> tuple[tuple[str, Any], ...] | str:
    """The flattened resolved config of ``experiment=<experiment> model=<model> <overrides>``, or why it cannot
    be composed."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    try:
        with initialize_config_dir(config_dir=str(CONFIGS_DIR), version_base="1.3"):
            cfg = compose("config", overrides=[f"experiment={experiment}", f"model={model}", *overrides])
        return tuple(_flat(OmegaConf.to_container(cfg, resolve=True)).items())
    except Exception as err:  # noqa: BLE001 - provenance only: say why instead of failing the report
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_value(v) for v in value) + "]"
    return "{}" if value == {} else str(value)


def config_overrides(config: dict, reference: dict) -> tuple[list[str], list[str]]:
    """Hydra overrides that turn ``reference`` (a flattened composed config) into the record's ``config``,
    and the reference keys the record lacks (it predates them); seed, fold, paths and logging left out."""
    record = {k: v for k, v in _flat(config or {}).items() if not _ignored(k)}
    reference = {k: v for k, v in reference.items() if not _ignored(k)}
    overrides = [
        f"{'' if k in reference else '+'}{k}={_value(v)}"
        for k, v in record.items()
        if k not in reference or reference[k] != v
    ]
    return overrides, sorted(set(reference) - set(record))


def _sweep(protocol: str, seeds: Iterable[int], folds: Iterable[int]) -> list[str]:
    seeds, folds = sorted({int(s) for s in seeds}), sorted({int(f) for f in folds})
    parts = [f"protocol.fold={','.join(map(str, folds))}"] if protocol == "paper" and folds else []
    if seeds and (protocol != "paper" or seeds != [0]):
        parts.append(f"seed={','.join(map(str, seeds))}")
    return parts


# ---------------------------------------------------------------- groups


@dataclass
class Split:
    """The runs of one group that share their settings (group hash)."""

    spec: GroupSpec
    frame: pd.DataFrame  # records_frame rows, with ``_record`` (the record)
    overrides: list[str]
    predates: list[str]
    note: str  # why the experiment's config could not be compared, else ""

    @property
    def ok(self) -> pd.DataFrame:
        return self.frame[self.frame.status == "ok"]

    @property
    def records(self) -> list[dict]:
        return list(self.frame._record)

    def command(self) -> str:
        sweep = _sweep(self.spec.protocol, self.frame.seed.dropna(), self.frame.fold.dropna())
        return " ".join([*_not_run_command(self.spec), *self.overrides, *sweep])

    def label(self) -> str:
        return "as the experiment" if not (self.overrides or self.note) else " ".join(self.overrides) or self.note


def input_mode(config: dict | None) -> str:
    """The E-MNIST builder's input mode of a record (``masked`` when the record predates the setting)."""
    return (((config or {}).get("dataset") or {}).get("builder") or {}).get("input_mode") or "masked"


def frame_of(records: Sequence[dict], tests: Sequence[str] = ()) -> pd.DataFrame:
    """:func:`records_frame` rows with the record each came from (``_record``) and its input mode. ``tests``:
    the named test sets of the dataset; a record without them (a failed run) gets a row for each."""
    frames = []
    for rec in records:
        rows = records_frame([rec])
        if tests and not rec.get("tests") and len(rows) == 1:
            rows = pd.concat([rows.assign(dataset=f"{rec.get('dataset')}/{name}") for name in tests], ignore_index=True)
        frames.append(rows.assign(_record=[rec] * len(rows)))
    if not frames:
        return pd.DataFrame(
            columns=["dataset", "protocol", "model", "config", "group", "status", "_record", "input_mode"]
        )
    frame = pd.concat(frames, ignore_index=True)
    return frame.assign(input_mode=[input_mode(c) for c in frame.config])


def _member(frame: pd.DataFrame, dataset: str, spec: GroupSpec) -> pd.Series:
    member = (frame.dataset == dataset) & (frame.protocol == spec.protocol) & (frame.model == spec.model)
    if spec.input_mode is not None:
        member &= frame.input_mode == spec.input_mode
    for key, value in spec.where:
        member &= frame.config.map(lambda config, k=key, v=value: _setting(config, k) == v).astype(bool)
    return member


def _setting(config: dict | None, key: str) -> Any:
    """The record's value of ``key``, or what its absence meant (:data:`ABSENT_MEANS`)."""
    value = _get(config, key)
    return ABSENT_MEANS.get(key) if value is None else value


def splits_of(frame: pd.DataFrame, dataset: str, spec: GroupSpec) -> list[Split]:
    """The group's runs split by settings, the main one first: the split as the experiment (no overrides),
    then the one with most ok runs, then the one with fewest overrides (a campaign's one setting beats a
    diagnostic re-run that changes more), then the one with most records."""
    rows = frame[_member(frame, dataset, spec)]
    composed = _composed(spec.experiment, spec.model, tuple(spec.overrides()))
    splits = []
    for _, part in rows.groupby(rows.group.fillna(""), sort=False):
        if isinstance(composed, str):
            overrides, predates, note = [], [], f"settings not compared ({composed})"
        else:
            overrides, predates = config_overrides(part.config.iloc[0], dict(composed))
            note = ""
        splits.append(Split(spec, part, overrides, predates, note))
    return sorted(splits, key=lambda s: (bool(s.overrides or s.note), -len(s.ok), len(s.overrides), -len(s.frame)))


def _not_run_command(spec: GroupSpec) -> list[str]:
    """The group's command without a sweep: what runs it (``Split.command`` adds a split's settings and units)."""
    return ["nac-bench", f"experiment={spec.experiment}", f"model={spec.model}", *spec.overrides()]


def _missing(split: Split) -> list[int]:
    """Expected seeds without an ok run (clean protocol; tables check the paper protocol's folds)."""
    if split.spec.protocol == "paper":
        return []
    return sorted(set(split.spec.expected) - {int(s) for s in split.ok.seed.dropna()})


def _status(split: Split, table_status: str) -> str:
    missing = _missing(split)
    if not missing:
        return table_status
    note = f"seeds {', '.join(map(str, missing))} missing"
    return f"incomplete: {note}" if table_status == "complete" else f"{table_status}; {note}"


def _percent(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce") * 100.0


# ---------------------------------------------------------------- sections


GROUP_COLUMNS = [
    "group",
    "runs (ok/total)",
    "test acc. (%)",
    f"test {CONFIDENCE:.0%} CI",
    "val at selected epoch (%)",
    "status",
    "paper (%)",
    "vs paper",
]


def _group_row(split: Split, paper: float | None, main: bool) -> dict[str, Any]:
    row = summary_table(split.frame.drop(columns=["_record", "input_mode"]), merge_commits=True).iloc[0]
    like = row.get("vs paper") == "like for like"
    return {
        "group": split.spec.title + ("" if main else f" [{split.label()}]"),
        "runs (ok/total)": row["runs"],
        "test acc. (%)": row["test"],
        f"test {CONFIDENCE:.0%} CI": row[f"test {CONFIDENCE:.0%} CI"],
        "val at selected epoch (%)": row["val"],
        "status": _status(split, row["status"]),
        "paper (%)": f"{paper:.2f}" if like and paper is not None else None,
        "vs paper": row.get("vs paper"),
    }


def results_section(spec: ReportSpec, splits: dict[str, list[Split]], paper: float | None) -> str:
    rows, others, absent = [], [], []
    for group in spec.groups:
        found = splits[group.key]
        if not found:
            absent.append(group)
            rows.append({"group": group.title, "runs (ok/total)": "0", "status": "not run yet"})
            continue
        rows.append(_group_row(found[0], paper, main=True))
        others += [_group_row(s, paper, main=False) for s in found[1:]]
    text = [
        "## 1. The paper's figure and the runs",
        "",
        f"Paper: **{paper:.2f} %** test accuracy for NAC on E-MNIST (`tables.PAPER_FIGURES`; the figure is "
        "attributed from a results aggregator, not checked against the PDF).",
        "",
    ]
    main = splits[spec.verdict_group]
    if main:
        ok = main[0].ok
        summary = summarize(_percent(ok.test))
        row = summary_table(main[0].frame.drop(columns=["_record", "input_mode"]), merge_commits=True).iloc[0]
        gaps = [] if row.get("vs paper") == "like for like" else [row.get("vs paper") or "no ok runs"]
        text.append(f"**Authors' pipeline, paper protocol:** {verdict(summary, paper, gaps)}")
    else:
        text.append(f"**Authors' pipeline, paper protocol:** not run yet, so no verdict on {paper:.2f} %.")
    text += [
        "",
        f"Rule: {paper:.2f} % is *reproduced* when it lies inside the Student-t {CONFIDENCE:.0%} "
        "interval of the mean test accuracy over the authors' pipeline's runs (its 5 folds: n − 1 = 4 degrees of "
        "freedom), bounds "
        "included; otherwise the miss is the paper's figure minus that mean, with the same interval shifted. "
        "The interval covers the fold-to-fold spread of these runs only: the paper gives no spread for its "
        "figure. A verdict is given only when the group is like for like with the paper (every fold, 75 "
        "epochs, the authors' input and NAC settings: `tables.paper_gaps`).",
        "",
        to_markdown(pd.DataFrame(rows, columns=GROUP_COLUMNS)),
        "",
        f"Test and val: mean ± sample std (ddof 1) over ok runs; CI: Student-t {CONFIDENCE:.0%} interval of the "
        "mean (single run: no std or interval). Val at the selected epoch is the best validation accuracy, "
        "which chose the checkpoint; under the paper protocol it is the test fold itself (val = test). The "
        "paper column is filled only where `tables.paper_gaps` finds the group like for like; `vs paper` "
        "says why not otherwise. Status: incomplete when runs failed, folds (paper) or seeds (clean) are "
        "missing. Runs of one group made with different commits are pooled (section 4 lists the commits).",
    ]
    if absent:
        text += [
            "",
            "Not run yet: " + "; ".join(f"{g.title} (`{' '.join(_not_run_command(g))}`)" for g in absent) + ".",
        ]
    if others:
        text += [
            "",
            "Runs of the same groups with other settings (left out of every figure above and below; the "
            "brackets give their config differences from the experiment):",
            "",
            to_markdown(pd.DataFrame(others, columns=GROUP_COLUMNS)),
        ]
    return "\n".join(text)


def _fmt_diff(d: Difference) -> tuple[str, str]:
    if d.diff is None:
        return "-", "-"
    if d.low is None:
        return f"{d.diff:+.2f}", "needs ≥ 2 runs on each side"
    return f"{d.diff:+.2f}", f"[{d.low:+.2f}, {d.high:+.2f}]"


def _fmt_summary(summary: Summary) -> str:
    if summary.mean is None:
        return "-"
    std = f" ± {summary.std:.2f}" if summary.std is not None else ""
    return f"{summary.mean:.2f}{std} (n = {summary.n})"


def _sizes(ok: pd.DataFrame) -> str:
    """``n_train / n_val / n_test`` of a group's runs (as recorded; distinct values joined with ``|``)."""
    cells = []
    for key in ("n_train", "n_val", "n_test"):
        values = list(dict.fromkeys(r.get(key) for r in ok._record if r.get(key) is not None))
        cells.append(", ".join(f"{v:,}" for v in values) or "?")
    return " / ".join(cells)


def inflation_section(spec: ReportSpec, splits: dict[str, list[Split]]) -> str:
    titles = {g.key: g for g in spec.groups}
    test_set, val_set = dict(spec.test_set), dict(spec.val_set)
    figures, diffs, missing = [], [], []
    for paper_key, clean_key, what in spec.pairs:
        sides = {key: splits[key][0].ok if splits[key] else None for key in (paper_key, clean_key)}
        for key in (paper_key, clean_key):
            group, ok = titles[key], sides[key]
            figures.append(
                {
                    "group": group.title,
                    "test scored on": test_set.get(group.protocol, ""),
                    "test (%)": _fmt_summary(summarize(_percent(ok.test))) if ok is not None else "not run yet",
                    "val at selected epoch (%)": _fmt_summary(summarize(_percent(ok.val)))
                    if ok is not None
                    else "not run yet",
                    "val scored on": val_set.get(group.protocol, ""),
                    "images (train / val / test)": _sizes(ok) if ok is not None else "-",
                }
            )
        paper_ok, clean_ok = sides[paper_key], sides[clean_key]
        if paper_ok is None or clean_ok is None or paper_ok.empty or clean_ok.empty:
            missing.append(
                f"{what}: needs ok runs of both `{titles[paper_key].experiment}` and `{titles[clean_key].experiment}`"
            )
            continue
        paper_test, clean_test, clean_val = _percent(paper_ok.test), _percent(clean_ok.test), _percent(clean_ok.val)
        for label, d, how in (
            ("paper test − clean test (the inflation)", welch_interval(paper_test, clean_test), "Welch, unpaired"),
            ("paper test − clean val at selected epoch", welch_interval(paper_test, clean_val), "Welch, unpaired"),
        ):
            value, interval = _fmt_diff(d)
            diffs.append(
                {
                    "model and input": what,
                    "difference (points)": label,
                    "value": value,
                    f"{CONFIDENCE:.0%} CI": interval,
                    "interval": how + (f", df {d.df:.1f}" if d.df else ""),
                    "runs": f"{d.n_a} vs {d.n_b}",
                }
            )
        within = summarize((clean_val - clean_test).dropna())
        value = f"{within.mean:+.2f}" if within.mean is not None else "-"
        interval = (
            f"[{within.low:+.2f}, {within.high:+.2f}]"
            if within.low is not None
            else "single run"
            if within.n == 1
            else "-"
        )
        diffs.append(
            {
                "model and input": what,
                "difference (points)": "clean val at selected epoch − clean test",
                "value": value,
                f"{CONFIDENCE:.0%} CI": interval,
                "interval": "paired by run, Student t",
                "runs": f"{within.n}",
            }
        )
    text = [
        "## 2. Selection on the test fold: `paper` − `clean`",
        "",
        "The `paper` protocol picks the checkpoint on the fold it reports; `clean` picks it on a validation "
        "split and scores the untouched official test set once. The difference of their mean test "
        "accuracies, for the same model and input, is the selection-on-test inflation. The two protocols "
        "train different runs (folds vs seeds), so the difference is unpaired and its interval is Welch's "
        "(Student t with Welch–Satterthwaite degrees of freedom).",
        "",
        "It is not selection alone: `paper` scores a fold of the pooled 70k images while `clean` scores the "
        "official 10k test set, and the two train on different numbers of images (last column of the first "
        "table). Of the differences below, the second compares two selected figures (paper test = its best "
        "val; clean's best val on its split of the 60k): what remains is training-set size and split "
        "difficulty. The third, within the clean runs, is what selecting on a split of the 60k, plus that "
        "split's difficulty against the 10k test set's, adds to the clean test figure.",
        "",
        to_markdown(pd.DataFrame(figures)),
        "",
    ]
    text += [to_markdown(pd.DataFrame(diffs)) if diffs else "(no difference measured yet)"]
    if missing:
        text += ["", "Not measured yet: " + "; ".join(missing) + "."]
    return "\n".join(text)


def _curve(
    records: Sequence[dict], key: str = "val_accuracy"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Epochs, mean, min and max over runs of ``history[*][key]`` (×100); runs shorter than others count
    only at the epochs they reached."""
    series = [
        pd.Series(
            {
                int(h["epoch"]): 100.0 * float(h[key])
                for h in (rec.get("history") or [])
                if h.get(key) is not None and h.get("epoch") is not None
            },
            dtype=float,
        )
        for rec in records
    ]
    series = [s for s in series if not s.empty]
    if not series:
        return None
    table = pd.concat(series, axis=1).sort_index()
    return (
        table.index.to_numpy(),
        table.mean(axis=1).to_numpy(),
        table.min(axis=1).to_numpy(),
        table.max(axis=1).to_numpy(),
    )


def plot_curves(curves: Sequence[tuple[str, str, Sequence[dict]]], path: Path) -> bool:
    """Validation accuracy per epoch, one line (mean over runs) and band (min-max) per (label, protocol,
    records); one panel per protocol. Returns False (writes nothing) when no record has a history."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    colors = {label: f"C{i}" for i, (label, _, _) in enumerate(curves)}  # by position: stable as runs land
    data = [(label, protocol, _curve(records), len(records)) for label, protocol, records in curves]
    data = [d for d in data if d[2] is not None]
    if not data:
        return False
    protocols = list(dict.fromkeys(protocol for _, protocol, _, _ in data))
    fig = Figure(figsize=(6.5 * len(protocols), 4.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(protocols), squeeze=False)[0]
    for ax, protocol in zip(axes, protocols):
        for label, prot, (epochs, mean, low, high), n in data:
            if prot != protocol:
                continue
            ax.plot(
                epochs,
                mean,
                color=colors[label],
                label=f"{label} (n = {n})",
                marker="o" if len(epochs) < 10 else None,
                markersize=3,
            )
            ax.fill_between(epochs, low, high, color=colors[label], alpha=0.2, linewidth=0)
        ax.set_title(f"{protocol} protocol", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Validation accuracy per epoch: mean over runs, band = min-max", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    return True


def curves_section(spec: ReportSpec, splits: dict[str, list[Split]], png: Path) -> str:
    titles = {g.key: g for g in spec.groups}
    nac = [k for k in spec.curve_groups if titles[k].model.startswith("nac")]
    baselines = [k for k in spec.curve_groups if k not in nac and splits[k]][: spec.curve_baselines]
    chosen = [
        (titles[k].title, titles[k].protocol, [r for r in splits[k][0].ok._record] if splits[k] else [])
        for k in nac + baselines
    ]
    text = ["## 3. Validation-accuracy learning curves", ""]
    if plot_curves(chosen, png):
        text += [
            f"![Validation accuracy per epoch]({png.name})",
            "",
            f"`{png.name}`: the NAC groups and the first {spec.curve_baselines} baselines with runs "
            f"({', '.join(titles[k].model for k in baselines) or 'none yet'}); ok runs of the main settings; "
            "line = mean over runs at each epoch (runs count at the epochs they reached), band = min to max. "
            "Validation is the reported fold under `paper`, a split of the 60k under `clean`.",
        ]
    else:
        png.unlink(missing_ok=True)
        text.append("Not run yet: no ok run of these groups has a training history.")
    missing = [titles[k].title for k in nac if not splits[k]]
    if missing:
        text += ["", "No curve yet (not run): " + "; ".join(missing) + "."]
    return "\n".join(text)


def paired_section(spec: ReportSpec, splits: dict[str, list[Split]]) -> str:
    """NAC against each baseline run by run (:func:`nac.harness.tables.paired_comparison` on the main
    settings of both groups): the mean difference with its paired-t interval, a winner only when the
    interval excludes 0."""
    if not spec.paired:
        return ""
    titles = {g.key: g.title for g in spec.groups}
    rows, waiting = [], []
    for a, b in spec.paired:
        sides = [splits[key][0] if splits[key] else None for key in (a, b)]
        if any(side is None or side.ok.empty for side in sides):
            waiting.append(f"{titles[a]} − {titles[b]}")
            continue
        # each side under its group's name: two groups of one model differ in a model setting (the NAC mode),
        # which the pairing context leaves out, so their runs still pair fold by fold
        frame = pd.concat([side.frame.assign(model=side.spec.name) for side in sides])
        frame = frame.drop(columns=["_record", "input_mode"])
        table = paired_comparison(frame, sides[0].spec.name, sides[1].spec.name, merge_commits=True)
        for _, row in table.iterrows():
            row = row.drop(["dataset", "commit"])
            rows.append({"comparison": row.pop("comparison"), **row.to_dict()})
    text = [
        "### NAC against the baselines, and NAC mode against mode, run by run",
        "",
        PAIRED_LEGEND + " Main settings of each group (the table above); differences in percentage points.",
    ]
    if rows:
        text += ["", to_markdown(pd.DataFrame(rows))]
    if waiting:
        text += ["", "Not compared yet (a side has no ok run): " + "; ".join(waiting) + "."]
    return "\n".join(text)


def _dates(records: Sequence[dict]) -> str:
    starts = sorted(r["started"] for r in records if r.get("started"))
    ends = sorted(r.get("finished") or r.get("started") for r in records if r.get("finished") or r.get("started"))
    if not starts:
        return "-"
    short = lambda stamp: stamp[:16].replace("T", " ")  # noqa: E731
    return f"{short(starts[0])} – {short(ends[-1])} UTC" if short(starts[0]) != short(ends[-1]) else short(starts[0])


def _train_hours(records: Sequence[dict]) -> float:
    total = 0.0
    for rec in records:
        times = [h.get("epoch_time_s") for h in rec.get("history") or [] if h.get("epoch_time_s") is not None]
        total += sum(times) if times else float(rec.get("train_time_total_s") or 0.0)
    return total / 3600.0


def _wall_hours(records: Sequence[dict]) -> str:
    """Sum of the records' ``wall_time_s`` in hours; runs resumed from a checkpoint are counted and
    named, since their wall time starts at the resumption."""
    hours = f"{sum(float(r.get('wall_time_s') or 0.0) for r in records) / 3600:.2f}"
    resumed = sum(r.get("resumed_from_epoch") is not None for r in records)
    return hours + (f" ({resumed} resumed: from the resumption)" if resumed else "")


def provenance_section(spec: ReportSpec, splits: dict[str, list[Split]]) -> str:
    rows = []
    for group in spec.groups:
        for i, split in enumerate(splits[group.key]):
            records = split.records
            commits = list(dict.fromkeys(short_commit(r.get("git_commit")) for r in records))
            dirty = sum("-dirty-" in (r.get("git_commit") or "") for r in records)
            note = "; ".join(
                filter(
                    None,
                    [split.note, f"record predates config keys: {', '.join(split.predates)}" if split.predates else ""],
                )
            )
            rows.append(
                {
                    "group": group.title + ("" if i == 0 else " [other settings]"),
                    "records": len(records),
                    "commit(s)": ", ".join(commits) + (f" ({dirty} with uncommitted changes)" if dirty else ""),
                    "data digest": ", ".join(
                        dict.fromkeys((r.get("data") or {}).get("digest") or "-" for r in records)
                    ),
                    "command": f"`{split.command()}`" + (f" ({note})" if note else ""),
                    "device": ", ".join(sorted({str(r.get("device") or "-") for r in records})),
                    "dates": _dates(records),
                    "train time (h)": f"{_train_hours(records):.2f}",
                    "run wall time (h)": _wall_hours(records),
                }
            )
    text = ["## 4. Provenance", ""]
    if not rows:
        return "\n".join(text + ["No records yet."])
    return "\n".join(
        text
        + [
            to_markdown(pd.DataFrame(rows)),
            "",
            "Command: the experiment and model, the record's config differences from that experiment's config as "
            "composed from `configs/` now (paths, logging and `force` left out), and the seeds or folds run. Train "
            "time: the sum of every epoch's training pass (`history[*].epoch_time_s`, wall clock, validation "
            "excluded) over all the group's records, ok or not; each run uses one thread (`threads: 1`) unless its "
            "command says otherwise, so this approximates the training CPU time. Run wall time: the sum of the "
            "records' `wall_time_s` (data, training, validation, testing); a run resumed from its checkpoint "
            "(`resumed_from_epoch`) counts only the process that finished it, so the train time can exceed it. Dates: "
            "first start to last finish.",
        ]
    )


def other_records_section(spec: ReportSpec, frame: pd.DataFrame, dataset: str | None = None) -> str:
    """Records of ``dataset`` (default: the spec's) in none of the groups, counted by protocol, model and
    the groups' distinguishing settings."""
    dataset = dataset or spec.dataset
    if frame.empty:
        return ""
    member = pd.Series(False, index=frame.index)
    for group in spec.groups:
        member |= _member(frame, dataset, group)
    rest = frame[(frame.dataset == dataset) & ~member]
    if rest.empty:
        return ""
    keys = list(dict.fromkeys(key for group in spec.groups for key, _ in group.where))
    rest = rest.assign(**{key: rest.config.map(lambda c, k=key: _value(_get(c, k))) for key in keys})
    by = ["protocol", "model"] + (["input_mode"] if any(g.input_mode for g in spec.groups) else []) + keys
    counts = rest.groupby(by, dropna=False).size().reset_index(name="records")
    return "\n".join(
        [
            "## Other records of this dataset",
            "",
            "Found under the records folder but in none of the groups above (not reported):",
            "",
            to_markdown(counts),
        ]
    )


def build_report(
    spec: ReportSpec, records: Sequence[dict], out: Path, command: str, time_only: dict[str, str] | None = None
) -> str:
    """The report's Markdown (written to ``out``; beside it ``<out stem>_curves.png``, the learning curves, or for
    a report over named test sets ``<out stem>_predictions.png``). ``time_only``: the Time-only CSV per protocol
    (bearings; default :data:`TIME_ONLY_DEFAULTS`)."""
    if spec.tests:
        from nac.harness.report_bearings import TIME_ONLY_DEFAULTS, bearing_sections

        n_dataset = sum(r.get("dataset") == spec.dataset for r in records)
        sections = [
            f"# {spec.title}",
            f"Generated by `{command}` from {n_dataset} {spec.dataset} record(s) ({len(records)} read). "
            "Rerun the same command when records land.",
            *bearing_sections(spec, records, out, {**TIME_ONLY_DEFAULTS, **(time_only or {})}),
        ]
        markdown = "\n\n".join(s for s in sections if s) + "\n"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(markdown)
        return markdown
    frame = frame_of(records)
    splits = {g.key: splits_of(frame, spec.dataset, g) if not frame.empty else [] for g in spec.groups}
    paper = PAPER_FIGURES.get((spec.dataset, spec.metric))
    n_dataset = int((frame.dataset == spec.dataset).sum()) if not frame.empty else 0
    png = out.with_name(f"{out.stem}_curves.png")
    sections = [
        f"# {spec.title}",
        f"Generated by `{command}` from {n_dataset} {spec.dataset} record(s) ({len(records)} read). "
        "Rerun the same command when records land.",
        results_section(spec, splits, paper),
        paired_section(spec, splits),
        inflation_section(spec, splits),
        curves_section(spec, splits, png),
        provenance_section(spec, splits),
        other_records_section(spec, frame),
    ]
    markdown = "\n\n".join(s for s in sections if s) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    return markdown


def main(argv: Sequence[str] | None = None) -> int:
    """``make_report.py <dataset> --records DIR... --out FILE``; exit 2 with one line on bad input."""
    import argparse
    import shlex
    import sys

    from nac.harness.records import load_records
    from nac.harness.report_bearings import TIME_ONLY_DEFAULTS

    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["cmapss"]:  # its own options (--predictions, --tune-records): nac/harness/report_cmapss.py
        from nac.harness.report_cmapss import main as cmapss_main

        return cmapss_main(given[1:])
    parser = argparse.ArgumentParser(
        description="Write a reproduction report (Markdown and a PNG: learning curves, "
        "or predictions for the bearings) from run records. "
        "C-MAPSS: make_report.py cmapss --help."
    )
    specs = reports()
    parser.add_argument("dataset", choices=sorted([*specs, "cmapss"]), help="the benchmark to report on")
    parser.add_argument("--records", nargs="+", default=["results/records"], help="record folders or files")
    parser.add_argument("--out", default=None, help="the Markdown file (default: results/reproduction_<dataset>.md)")
    parser.add_argument(
        "--time-only",
        default=None,
        help="bearings: the paper-protocol Time-only CSV "
        f"(scripts/bearing_time_reference.py --out; default {TIME_ONLY_DEFAULTS['paper']})",
    )
    parser.add_argument(
        "--time-only-clean",
        default=None,
        help=f"bearings: the clean-protocol Time-only CSV (default {TIME_ONLY_DEFAULTS['clean']})",
    )
    args = parser.parse_args(given)
    if args.dataset == "cmapss":
        print("make_report: cmapss must come first: make_report.py cmapss [options]", file=sys.stderr)
        return 2
    time_only = {k: v for k, v in (("paper", args.time_only), ("clean", args.time_only_clean)) if v is not None}
    if time_only and not specs[args.dataset].tests:
        print(
            f"make_report: --time-only and --time-only-clean are for the bearings report, not {args.dataset}",
            file=sys.stderr,
        )
        return 2
    missing = [r for r in args.records if not Path(r).exists()]
    if missing:
        print(
            f"make_report: no records at {', '.join(missing)}; pass the folder the records are in "
            "(e.g. --records results/records)",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out or f"results/reproduction_{args.dataset}.md")
    if out.suffix != ".md":
        print(f"make_report: --out {out} must name a .md file", file=sys.stderr)
        return 2
    command = "python scripts/make_report.py " + shlex.join(given)
    try:
        build_report(specs[args.dataset], load_records(args.records), out, command, time_only)
    except ValueError as err:  # a Time-only CSV of another format
        print(f"make_report: {err}", file=sys.stderr)
        return 2
    if specs[args.dataset].tests:
        print(f"wrote {out} and {out.with_name(out.stem + '_predictions.png')} (if any run saved predictions)")
    else:
        print(f"wrote {out} and {out.with_name(out.stem + '_curves.png')} (if any run has a history)")
    return 0
