"""C-MAPSS reproduction report (issue 14 item 2): every subset at the full budget, against the literature.

    python scripts/make_report.py cmapss --records results/records --out results/reproduction_cmapss.md \
        --predictions /work/campaign_out/records --tune-records /work/campaign_out/tune/records

Groups: one per subset and model, the runs of ``nac-bench experiment=cmapss_full dataset.builder.subset=<s>
model=<m>`` (tag = the subset, seeds 0-2), split by settings as the other reports (:func:`report.splits_of`).
Sections: (1) per subset, test RMSE and NASA score (mean ± sample std, ddof 1; Student-t 95 % interval of
the mean, :func:`nac.harness.tables.summarize`), validation RMSE, epochs, status, and the literature's
figures as reference rows; (2) the FD001 goal (NAC test RMSE ≤ 12.5); (3) NAC minus each baseline on test
RMSE, paired by seed (paired-t interval of the mean difference); (4) tuned against default: the best Optuna
trial by validation RMSE (trial records, tag ``tune``) and any 3-seed re-run of its config; (5) one
prediction-vs-truth PNG per subset (``<out stem>_<subset>.png``, seed 0 of each model, test engines sorted by
true RUL) from the ``.predictions.npz`` files, found under ``--predictions`` at the record's path relative
to its records folder; (6) provenance (:func:`report.provenance_section`). Every number is read from records.
"""

from __future__ import annotations

import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from nac.harness.report import (
    SEEDS,
    GroupSpec,
    ReportSpec,
    Split,
    _composed,
    _dates,
    _flat,
    _ignored,
    _member,
    _missing,
    _train_hours,
    _value,
    frame_of,
    provenance_section,
    splits_of,
)
from nac.harness.tables import (
    CONFIDENCE,
    Summary,
    _fmt,
    _fmt_interval,
    _get,
    _verdict,
    pair_units,
    short_commit,
    summarize,
    to_markdown,
)

SUBSETS = ("FD001", "FD002", "FD003", "FD004")
#: the campaign's models (its order) and their titles
MODELS = (
    ("nac", "NAC (nac)"),
    ("nac_official", "NAC (nac_official)"),
    ("lstm", "LSTM"),
    ("cfc", "CfC"),
    ("ltc", "LTC"),
    ("transformer", "Transformer"),
    ("cnn1d", "CNN (cnn1d)"),
)
NAC = ("nac", "nac_official")
EXPERIMENT = "cmapss_full"
GOAL_SUBSET, GOAL_RMSE = "FD001", 12.5
#: literature (test RMSE, NASA score) per subset, and the subsets whose RMSE matches what later work quotes
#: (docs/PROTOCOLS.md section 3 says where); every other figure is as recalled, not checked against the paper
LITERATURE = (
    (
        "Li, Ding & Sun 2018, CNN",
        {"FD001": (12.61, 273.7), "FD002": (22.36, 10412), "FD003": (12.64, 284.1), "FD004": (23.31, 12466)},
        ("FD001", "FD002", "FD003", "FD004"),
    ),
    (
        "Zheng et al. 2017, LSTM",
        {"FD001": (16.14, 338), "FD002": (24.49, 4450), "FD003": (16.18, 852), "FD004": (28.17, 5550)},
        ("FD001", "FD003"),
    ),
)


def literature_label(source: str, subset: str, rmse_quoted: Sequence[str]) -> str:
    """The literature row's name, saying how far its figures were checked."""
    if subset in rmse_quoted:
        return f"{source} (literature; RMSE as later work quotes it, score unchecked)"
    return f"{source} (literature, as recalled, unchecked)"


#: the linear reference's CSV (scripts/cmapss_linear_reference.py --out) and the command that writes it
LINEAR_DEFAULT = "results/cmapss_linear_reference.csv"
LINEAR_COMMAND = f"python scripts/cmapss_linear_reference.py --out {LINEAR_DEFAULT}"
LINEAR_TITLE = "Ridge on the flattened window (linear reference)"
TUNE_TAG = "tune"
#: the settings the Optuna experiments search (configs/experiment/cmapss_tune*.yaml)
TUNE_KEYS = ("trainer.optimizer.lr", "dataset.width", "model.topk", "model.mode", "dataset.cnn1d.units")
#: besides report.IGNORED_KEYS, keys that a re-run of a trial's config may change: the tag, and what the seed sets
RERUN_IGNORED = ("tag", "device", "trainer.checkpoint", "model.wiring_seed")
CI = f"{CONFIDENCE:.0%} CI"
RMSE_DIGITS = 2
COLUMNS = ["model", "runs (ok/expected)", "test RMSE", f"test RMSE {CI}", "NASA score", "val RMSE", "epochs run/best"]
COLUMNS += ["status", "settings"]

CMAPSS = ReportSpec(
    dataset="cmapss",
    title="C-MAPSS at the full budget: NAC and the baselines on FD001-FD004, against the literature",
    metric="rmse",
    groups=tuple(
        GroupSpec(
            f"{subset}/{model}",
            f"{title}, {subset}",
            EXPERIMENT,
            model,
            "clean",
            None,
            SEEDS,
            (("dataset.builder.subset", subset),),
        )
        for subset in SUBSETS
        for model, title in MODELS
    ),
)


# ---------------------------------------------------------------- groups


def _numbers(values) -> pd.Series:
    return pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").astype(float)


def subset_of(config: dict | None) -> str | None:
    """The record's C-MAPSS subset (``dataset.builder.subset``)."""
    return _get(config, "dataset.builder.subset")


def campaign_splits(frame: pd.DataFrame) -> dict[str, list[Split]]:
    """Per group key ``<subset>/<model>``: its splits (main one first). A run belongs to the campaign when its
    tag names its own subset (``tag: ${dataset.builder.subset}``); tuning trials and re-runs with other tags
    do not."""
    if frame.empty:
        return {g.key: [] for g in CMAPSS.groups}
    campaign = frame[frame.tag == frame.config.map(subset_of)]
    splits = {}
    for group in CMAPSS.groups:
        found = not campaign[_member(campaign, CMAPSS.dataset, group)].empty
        splits[group.key] = splits_of(campaign, CMAPSS.dataset, group) if found else []
    return splits


def _command(model: str, subset: str, extra: Sequence[str] = ()) -> str:
    return " ".join(
        ["nac-bench", f"experiment={EXPERIMENT}", f"model={model}", f"dataset.builder.subset={subset}", *extra]
    )


def status(split: Split) -> str:
    """``complete`` (every expected seed ok, nothing failed), else what is missing and the command that
    runs it; ``single run`` where one ok run gives no spread."""
    subset = dict(split.spec.where)["dataset.builder.subset"]
    notes = []
    bad = split.frame[split.frame.status != "ok"]
    if len(bad):
        notes.append(f"{len(bad)} not ok ({', '.join(sorted(set(bad.status.astype(str))))})")
    missing = _missing(split)
    if missing:
        seeds = ",".join(map(str, missing))
        command = _command(split.spec.model, subset, [*split.overrides, f"seed={seeds}"])
        notes.append(f"seed{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} missing: `{command}`")
    text = "incomplete: " + "; ".join(notes) if notes else "complete"
    return text + ("; single run" if len(split.ok) == 1 else "")


def _score(summary: Summary) -> str | None:
    """NASA score cell: ``mean ± std`` with one decimal and thousands separators."""
    if summary.mean is None:
        return None
    return f"{summary.mean:,.1f}" + (f" ± {summary.std:,.1f}" if summary.std is not None else "")


def group_row(split: Split, title: str) -> dict[str, Any]:
    """One row of a subset's table (see :data:`COLUMNS`)."""
    ok = split.ok
    rmse = summarize(ok.test)
    by_seed = sorted(ok._record, key=lambda r: (r.get("seed") is None, r.get("seed")))
    return {
        "model": title,
        "runs (ok/expected)": f"{len(ok)}/{len(split.spec.expected)}",
        "test RMSE": _fmt(rmse, RMSE_DIGITS),
        f"test RMSE {CI}": _fmt_interval(rmse, RMSE_DIGITS, "single run"),
        "NASA score": _score(summarize(ok.test_score)),
        "val RMSE": _fmt(summarize(ok.val), RMSE_DIGITS),
        "epochs run/best": ", ".join(f"{r.get('epochs_run', '?')}/{r.get('best_epoch', '?')}" for r in by_seed),
        "status": status(split),
        "settings": split.label(),
    }


def read_linear(path: Path) -> pd.DataFrame:
    """The linear reference per subset (index), from ``scripts/cmapss_linear_reference.py --out``."""
    table = pd.read_csv(path)
    needed = {"subset", "alpha", "val RMSE", "test RMSE", "test NASA score"}
    if not needed <= set(table.columns):
        raise ValueError(
            f"{path} lacks the column(s) {', '.join(sorted(needed - set(table.columns)))}; "
            f"write it with: {LINEAR_COMMAND}"
        )
    return table.set_index("subset")


def linear_row(subset: str, linear: pd.DataFrame | None) -> list[dict[str, Any]]:
    """The subset's linear-reference row (none when the CSV lacks the subset or was not given)."""
    if linear is None or subset not in linear.index:
        return []
    row = linear.loc[subset]
    return [
        {
            "model": LINEAR_TITLE,
            "runs (ok/expected)": "1 fit",
            "test RMSE": f"{row['test RMSE']:.2f}",
            "NASA score": f"{row['test NASA score']:,.1f}",
            "val RMSE": f"{row['val RMSE']:.2f}",
            "status": "reference",
            "settings": f"alpha {row['alpha']:g} (chosen on val RMSE)",
        }
    ]


def not_below_linear(subset: str, splits: dict[str, list[Split]], linear: pd.DataFrame | None) -> str:
    """The sentence naming the models whose mean test RMSE is not below the linear reference's."""
    if linear is None or subset not in linear.index:
        return ""
    line = float(linear.loc[subset, "test RMSE"])
    above = []
    for model, title in MODELS:
        found = splits[f"{subset}/{model}"]
        mean = summarize(found[0].ok.test).mean if found else None
        if mean is not None and mean >= line:
            above.append(f"{title} {mean:.2f}")
    names = "; ".join(above) if above else "none"
    return f"Mean test RMSE not below the linear reference ({line:.2f}): {names}."


def literature_rows(subset: str) -> list[dict[str, Any]]:
    return [
        {
            "model": literature_label(source, subset, rmse_quoted),
            "test RMSE": f"{figures[subset][0]:.2f}",
            "NASA score": f"{figures[subset][1]:,g}",
            "status": "reference",
        }
        for source, figures, rmse_quoted in LITERATURE
    ]


def subset_table(
    subset: str, splits: dict[str, list[Split]], linear: pd.DataFrame | None = None
) -> tuple[str, list[str]]:
    """The subset's table (main settings, then the linear reference and the literature) and its runs with
    other settings."""
    rows, others = [], []
    for model, title in MODELS:
        found = splits[f"{subset}/{model}"]
        if not found:
            command = _command(model, subset)
            rows.append(
                {"model": title, "runs (ok/expected)": f"0/{len(SEEDS)}", "status": f"not run yet: `{command}`"}
            )
            continue
        rows.append(group_row(found[0], title))
        others += [group_row(s, title) for s in found[1:]]
    table = to_markdown(pd.DataFrame(rows + linear_row(subset, linear) + literature_rows(subset), columns=COLUMNS))
    return table, ([to_markdown(pd.DataFrame(others, columns=COLUMNS))] if others else [])


def results_section(splits: dict[str, list[Split]], linear: pd.DataFrame | None = None, linear_source: str = "") -> str:
    text = [
        "## 1. Test RMSE and NASA score per subset",
        "",
        "Runs: `nac-bench experiment=cmapss_full dataset.builder.subset=<subset> model=<model>`, seeds 0-2, the "
        "`clean` protocol (docs/PROTOCOLS.md section 3): the epoch is selected on the validation engines' RMSE "
        "(20 % of the training engines), then the last window of each test engine is scored once against its "
        "true RUL (capped at 125). Test RMSE and val RMSE (at the selected epoch) in cycles, NASA score summed "
        "over the test engines (late predictions cost more): mean ± sample std (ddof 1) over ok runs; CI: "
        f"Student-t {CONFIDENCE:.0%} interval of the mean test RMSE (n − 1 degrees of freedom; a single run "
        "has neither). Epochs run/best: each ok run's epochs trained and selected epoch, in seed order. "
        "Literature rows: the figures of docs/PROTOCOLS.md section 3, not checked against the papers "
        "themselves: each row says whether its RMSE matches what later work quotes (section 3 names where) or "
        "is as recalled; no NASA score was checked (the windows used here are Li et al.'s).",
        "",
        "Linear reference: scikit-learn's ridge regression on each flattened window (cycles x sensors), same "
        "data, alpha chosen on the validation engines' RMSE, one deterministic fit per subset "
        "(`scripts/cmapss_linear_reference.py`). A model at or above it has learned no more than a linear map "
        "of the window. "
        + (
            f"Read from `{linear_source}`."
            if linear is not None
            else f"Not computed yet: `{LINEAR_COMMAND}`, then rerun this report."
        ),
    ]
    for subset in SUBSETS:
        table, others = subset_table(subset, splits, linear)
        text += ["", f"### {subset}", "", table]
        sentence = not_below_linear(subset, splits, linear)
        if sentence:
            text += ["", sentence]
        if others:
            text += ["", f"{subset}, runs with other settings (left out of sections 2, 3 and 5):", "", *others]
    return "\n".join(text)


# ---------------------------------------------------------------- goal and paired comparisons


def goal_sentence(summary: Summary, title: str, goal: float = GOAL_RMSE, note: str = "") -> str:
    """The plain sentence on ``test RMSE ≤ goal``. Met when the mean is at or below the goal; the 95 %
    interval says whether that is established (it lies wholly at or below the goal) or not."""
    head = f"**{title} on {GOAL_SUBSET}**"
    if summary.n == 0:
        return f"{head}: not run yet, so the goal (test RMSE ≤ {goal}) is not assessed."
    runs = f"mean {summary.mean:.2f}" + (f" ± {summary.std:.2f}" if summary.std is not None else "")
    runs += f" over {summary.n} run{'s' if summary.n > 1 else ''}"
    gap = summary.mean - goal
    where = f"{abs(gap):.2f} {'below' if gap <= 0 else 'above'} {goal}{note}"
    if summary.low is None:
        return f"{head}: goal {'met' if gap <= 0 else 'not met'} on a single run ({runs}, {where}); no interval."
    interval = f"{CONFIDENCE:.0%} CI [{summary.low:.2f}, {summary.high:.2f}]"
    if summary.high <= goal:
        return f"{head}: goal met ({runs}, {where}); the whole {interval} lies at or below {goal}."
    if gap <= 0:
        return (
            f"{head}: goal met on the mean but not established ({runs}, {where}); the {interval} reaches above {goal}."
        )
    if summary.low <= goal:
        return f"{head}: goal not met ({runs}, {where}); the {interval} still reaches {goal}."
    return f"{head}: goal not met ({runs}, {where}); the whole {interval} lies above {goal}."


def goal_section(splits: dict[str, list[Split]], tuned: Sequence[tuple[str, Split]] = ()) -> str:
    lines = [
        f"## 2. The goal: NAC test RMSE ≤ {GOAL_RMSE} on {GOAL_SUBSET}",
        "",
        f"Met when the mean test RMSE over the seeds is at or below {GOAL_RMSE}; established when the Student-t "
        f"{CONFIDENCE:.0%} interval of that mean lies wholly at or below it. Main settings (section 1) and any "
        "re-run of a tuned configuration (section 4).",
        "",
    ]
    for model, title in MODELS:
        if model not in NAC:
            continue
        found = splits[f"{GOAL_SUBSET}/{model}"]
        split = found[0] if found else None
        note = "" if split is None or not _missing(split) else f", seeds {', '.join(map(str, _missing(split)))} missing"
        note += "" if split is None or split.label() == "as the experiment" else f", settings: {split.label()}"
        lines.append("- " + goal_sentence(summarize(split.ok.test) if split else summarize([]), title, note=note))
    for label, split in tuned:
        lines.append("- " + goal_sentence(summarize(split.ok.test), label))
    return "\n".join(lines)


def paired_difference(a: Split, b: Split) -> tuple[Summary, list[int], list[str]]:
    """Test RMSE of ``a`` minus ``b``, paired by seed over ok runs: the :class:`Summary` of the per-seed
    differences (its interval is the paired-t interval), the seeds paired, and the seeds left unpaired."""
    sides = []
    for split in (a, b):
        ok = split.ok[split.ok.test.notna() & split.ok.seed.notna()]
        sides.append(pd.Series(_numbers(ok.test).to_numpy(), index=ok.seed.astype(int).to_numpy()))
    pairing = pair_units(*sides)
    shared = [int(s) for s in pairing.differences.index]
    unpaired = [f"seed {s} ({a.spec.model} only)" for s in pairing.only_a]
    unpaired += [f"seed {s} ({b.spec.model} only)" for s in pairing.only_b]
    unpaired += [f"seed {s} (several runs)" for s in pairing.duplicated]
    diff = summarize(pairing.differences.to_numpy())
    return diff, shared, unpaired


def paired_verdict(diff: Summary, a: str, b: str) -> str:
    """Which model has the lower test RMSE, named only when the paired interval excludes 0
    (:func:`nac.harness.tables._verdict` with RMSE's mode, lower is better)."""
    verdict = _verdict(diff, a, b, "min")
    return f"{verdict} (lower RMSE)" if verdict.endswith(" better") else verdict


def paired_row(subset: str, comparison: str, a: Split, b: Split) -> dict[str, Any]:
    """One row of a paired table: test RMSE of ``a`` minus ``b`` by seed, its paired-t interval and verdict."""
    diff, shared, unpaired = paired_difference(a, b)
    return {
        "subset": subset,
        "comparison": comparison,
        "pairs (seeds)": f"{diff.n} ({', '.join(map(str, shared))})" if shared else "0",
        "difference (RMSE)": _fmt(diff, RMSE_DIGITS),
        f"paired-t {CI}": _fmt_interval(diff, RMSE_DIGITS, "single pair"),
        "verdict": paired_verdict(diff, a.spec.model, b.spec.model),
        "unpaired": ", ".join(unpaired),
    }


def paired_section(splits: dict[str, list[Split]]) -> str:
    rows, absent = [], []
    for subset in SUBSETS:
        for nac in NAC:
            for model, _ in MODELS:
                if model in NAC:
                    continue
                a, b = splits[f"{subset}/{nac}"], splits[f"{subset}/{model}"]
                if not a or not b:
                    absent.append(f"{subset} {nac} − {model}")
                    continue
                other = [f"{s.spec.model}: {s.label()}" for s in (a[0], b[0]) if s.label() != "as the experiment"]
                rows.append(
                    {
                        **paired_row(subset, f"{nac} − {model}", a[0], b[0]),
                        "settings": "; ".join(other) or "as the experiment",
                    }
                )
    columns = ["subset", "comparison", "pairs (seeds)", "difference (RMSE)", f"paired-t {CI}", "verdict", "unpaired"]
    columns.insert(2, "settings")
    table = to_markdown(pd.DataFrame(rows, columns=columns)) if rows else "(no subset has runs of both sides yet)"
    return "\n".join(
        [
            "## 3. NAC against each baseline, paired by seed",
            "",
            "For each subset, the test RMSE of a NAC model minus a baseline's, run by run on the same seed (same "
            "validation engines, same seed for weights and batch order; main settings): mean ± sample std of the "
            f"per-seed differences and the paired Student-t {CONFIDENCE:.0%} interval of their mean (n − 1 degrees "
            "of freedom). Negative: NAC has the lower (better) RMSE. A ranking is claimed only when the interval "
            "excludes 0; otherwise the two are not distinguishable with these seeds.",
            "",
            table,
            *(["", "Not compared yet (a side not run): " + ", ".join(absent) + "."] if absent else []),
        ]
    )


# ---------------------------------------------------------------- tuning


def comparable(config: dict | None) -> dict[str, Any]:
    """A config flattened, without what a re-run of a trial may change (seed, tag, paths, logging)."""
    extra = lambda k: any(k == x or k.startswith(x + ".") for x in RERUN_IGNORED)  # noqa: E731
    return {k: v for k, v in _flat(config or {}).items() if not _ignored(k) and not extra(k)}


def best_trial(trials: pd.DataFrame) -> pd.Series | None:
    """The ok trial with the lowest validation RMSE (the sweep's objective); None without one."""
    ok = trials[(trials.status == "ok") & _numbers(trials.val).notna().to_numpy()]
    if ok.empty:
        return None
    return ok.loc[_numbers(ok.val).set_axis(ok.index).idxmin()]


def tuned_params(best: pd.Series, trials: pd.DataFrame, default: dict[str, Any]) -> list[str]:
    """``key=value`` for each searched setting of the best trial (:data:`TUNE_KEYS` that vary over the trials
    or differ from the default config), with the default in brackets."""
    out = []
    for key in TUNE_KEYS:
        value = _get(best.config, key)
        if value is None:
            continue
        values = {_value(_get(c, key)) for c in trials.config}
        if len(values) > 1 or default.get(key) != value:
            shown = f"{value:.3g}" if isinstance(value, float) else _value(value)
            out.append(f"{key}={shown} (default {_value(default.get(key))})")
    return out


def tune_command(model: str, subset: str) -> str:
    experiment = {"nac": "cmapss_tune_nac", "nac_official": "cmapss_tune_nac", "cnn1d": "cmapss_tune_cnn1d"}
    name = experiment.get(model, "cmapss_tune")
    parts = ["nac-bench", f"experiment={name}"] + ([f"model={model}"] if name != f"cmapss_tune_{model}" else [])
    return " ".join(parts + ([f"dataset.builder.subset={subset}"] if subset != "FD001" else []))


def _figures(label: str, settings: str, ok: pd.DataFrame, runs: str) -> dict[str, Any]:
    rmse = summarize(ok.test)
    return {
        "configuration": label,
        "settings": settings,
        "runs": runs,
        "val RMSE": _fmt(summarize(ok.val), RMSE_DIGITS),
        "test RMSE": _fmt(rmse, RMSE_DIGITS),
        f"test RMSE {CI}": _fmt_interval(rmse, RMSE_DIGITS, "single run"),
        "NASA score": _score(summarize(ok.test_score)),
    }


def rerun_of(best: pd.Series, frame: pd.DataFrame) -> pd.DataFrame:
    """Records of ``frame`` (no trials) whose config equals the best trial's but for :func:`comparable`'s keys."""
    target = comparable(best.config)
    same = frame.config.map(lambda c: comparable(c) == target).astype(bool)
    return frame[(frame.model == best.model) & (frame.tag != TUNE_TAG) & same]


def _provenance(label: str, records: Sequence[dict]) -> str:
    commits = ", ".join(dict.fromkeys(short_commit(r.get("git_commit")) for r in records))
    return f"{label}: commit(s) {commits}, {_dates(records)}, {_train_hours(records):.2f} train hours."


def study_rows(
    model: str, subset: str, trials: pd.DataFrame, frame: pd.DataFrame, splits: dict[str, list[Split]]
) -> tuple[list[dict], list[str], list[tuple[str, Split]]]:
    """Rows of one study (default, best trial, re-run), its provenance lines and its re-run group."""
    title = dict(MODELS).get(model, model)
    label = f"{title}, {subset}"
    found = splits.get(f"{subset}/{model}") or []
    n_ok = int((trials.status == "ok").sum())
    lines = [
        _provenance(
            f"- {label}: {n_ok} ok of {len(trials)} trial(s), `{tune_command(model, subset)}`", list(trials._record)
        )
    ]
    row = {"model": label, "configuration": "default"}
    if found:
        rows = [{**row, **_figures("default", found[0].label(), found[0].ok, f"{len(found[0].ok)}/3 seeds")}]
    else:
        rows = [{**row, "runs": f"not run yet: `{_command(model, subset)}`"}]
    best = best_trial(trials)
    if best is None:
        return (
            rows + [{"model": label, "configuration": "best trial", "runs": f"no ok trial of {len(trials)}"}],
            lines,
            [],
        )
    composed = _composed(EXPERIMENT, model, (f"dataset.builder.subset={subset}",))
    params = tuned_params(best, trials, dict(composed) if not isinstance(composed, str) else {})
    chosen = f"best of {n_ok} ok trials (seed {best.seed}), chosen on val"
    rows.append(
        {"model": label, **_figures(chosen, "; ".join(params) or "the defaults", trials.loc[[best.name]], "1 run")}
    )
    same = rerun_of(best, frame)
    if same.empty:
        # the command takes each value at full precision (the table rounds floats): a rounded learning
        # rate would give runs whose config is not the best trial's
        exact = [f"{key}={_value(_get(best.config, key))}" for key in (p.split("=")[0] for p in params)]
        extra = exact + [f"tag={subset}_tuned", "seed=0,1,2"]
        command = _command(model, subset, extra)
        return (
            rows + [{"model": label, "configuration": "tuned, re-run", "runs": f"not run yet: `{command}`"}],
            lines,
            [],
        )
    split = Split(
        GroupSpec(f"{subset}/{model}/tuned", label, EXPERIMENT, model, "clean", None, SEEDS), same, [], [], ""
    )
    tags = ", ".join(sorted(set(same.tag.astype(str))))
    rerun = f"tuned, re-run (tag {tags})"
    rows.append({"model": label, **_figures(rerun, "the best trial's", split.ok, f"{len(split.ok)}/3 seeds")})
    lines.append(_provenance(f"- {label}, {rerun}: {len(same)} record(s)", list(same._record)))
    return rows, lines, [(f"{title}, tuned (tag {tags})", split)]


def tuned_pairs(reruns: Sequence[tuple[str, Split]]) -> list[dict[str, Any]]:
    """Each tuned NAC re-run minus each tuned baseline re-run of the same subset, paired by seed."""

    def subset(split: Split) -> str:
        return split.spec.key.split("/")[0]  # keys are <subset>/<model>/tuned

    return [
        paired_row(subset(a), f"{a_label} − {b_label}", a, b)
        for a_label, a in reruns
        for b_label, b in reruns
        if a.spec.model in NAC and b.spec.model not in NAC and subset(a) == subset(b)
    ]


def tuning_section(
    tune_frame: pd.DataFrame | None, frame: pd.DataFrame, splits: dict[str, list[Split]], tune_dir: str | None
) -> tuple[str, list[tuple[str, Split]]]:
    """Per tuned model: the default group, the best trial (by validation RMSE) and any 3-seed re-run of its
    config; returns the section and the re-run groups (label, split) for the goal."""
    text = [
        "## 4. Tuned against default",
        "",
        "Tuning: Hydra's Optuna sweeper, TPE (seed 0), 20 trials per model, each a full `trainer=cmapss` run whose "
        "objective is its best validation RMSE (held-out training engines). The best trial is chosen on that "
        "validation RMSE only; its test RMSE and score are shown but played no part in the choice. A re-run is "
        "every record (outside the trials) whose config equals the best trial's but for seed, tag, paths and "
        "logging: the tuned configuration trained with seeds 0-2 like the default.",
        "",
    ]
    baselines = [
        (summarize(found[0].ok.val).mean, model)
        for model, _ in MODELS
        if model not in NAC and (found := splits[f"{GOAL_SUBSET}/{model}"]) and not found[0].ok.empty
    ]
    if baselines:
        val, model = min(baselines)
        text += [
            f"Strongest baseline on {GOAL_SUBSET} by the default runs' mean validation RMSE: `{model}` ({val:.2f}; "
            "chosen on validation, not test).",
            "",
        ]
    if tune_frame is None:
        return "\n".join(text + ["No trial records given (`--tune-records <output root>/tune/records`)."]), []
    if tune_frame.empty:
        return "\n".join(text + [f"No tuning trial (tag `{TUNE_TAG}`) under {tune_dir} yet."]), []
    rows, lines, reruns = [], [], []
    order = {model: i for i, (model, _) in enumerate(MODELS)}
    tune_frame = tune_frame.assign(subset=tune_frame.config.map(subset_of), order=tune_frame.model.map(order))
    studies = tune_frame.sort_values(["order", "subset"], kind="stable").groupby(["model", "subset"], sort=False)
    budgets = {}
    for (model, subset), trials in studies:
        study, provenance, rerun = study_rows(model, subset, trials, frame, splits)
        rows, lines, reruns = rows + study, lines + provenance, reruns + rerun
        budgets[f"{model} ({subset})"] = len(trials)
    columns = ["model", "configuration", "settings", "runs", "val RMSE", "test RMSE", f"test RMSE {CI}", "NASA score"]
    text += [
        to_markdown(pd.DataFrame(rows, columns=columns)),
        "",
        "Trial budgets: "
        + ", ".join(f"{study} {n}" for study, n in budgets.items())
        + (
            " trials (the same for every model)."
            if len(set(budgets.values())) == 1
            else " trials (not the same: compare with care)."
        ),
        "",
        "Trials and re-runs:",
        "",
        *lines,
    ]
    pairs = tuned_pairs(reruns)
    if pairs:
        text += [
            "",
            "Tuned against tuned, paired by seed (as in section 3: test RMSE of the NAC re-run minus the baseline's, "
            "same seeds; a ranking only when the paired interval excludes 0):",
            "",
            to_markdown(pd.DataFrame(pairs)),
        ]
    return "\n".join(text), reruns


# ---------------------------------------------------------------- predictions


def record_predictions(rec: dict, roots: Sequence[Path], predictions: Path | None) -> Path:
    """Where the record's ``.predictions.npz`` should be: beside it, or under ``predictions`` at the record's
    path relative to the records folder it was read from."""
    from nac.harness.predictions import predictions_path

    path = Path(rec["_path"])
    if predictions is None:
        return predictions_path(path)
    for root in roots:
        base = root.parent if root.is_file() else root
        try:
            return predictions_path(predictions / path.resolve().relative_to(base.resolve()))
        except ValueError:
            continue
    return predictions_path(predictions / path.name)


def _check(rec: dict, info: dict, data) -> str:
    """Why a predictions file does not belong to the record ("" when it does)."""
    from nac.harness.predictions import regression_metrics

    if info.get("record") not in (None, Path(rec["_path"]).name):
        return f"it names record {info.get('record')}"
    rmse, recorded = regression_metrics(data.pred, data.true)["rmse"], (rec.get("test") or {}).get("rmse")
    if recorded is not None and not math.isclose(rmse, recorded, rel_tol=1e-4):
        return f"its RMSE {rmse:.4f} differs from the record's {recorded:.4f}"
    return ""


def predictions_section(
    splits: dict[str, list[Split]], out: Path, roots: Sequence[Path], predictions: Path | None
) -> str:
    """One PNG per subset (``<out stem>_<subset>.png``): a panel per model, seed 0, engines by true RUL."""
    from nac.harness.prediction_plots import figure_for
    from nac.harness.predictions import read_predictions

    where = f"under {predictions}" if predictions is not None else "beside the records"
    text = [
        "## 5. Predictions against the truth on the test engines",
        "",
        "Seed 0 of each model (main settings), from its `<record stem>.predictions.npz` "
        f"({where}); test engines sorted by true RUL; each panel's title gives the RMSE and NASA score "
        "recomputed from the file (they match the record's).",
    ]
    for subset in SUBSETS:
        png = out.with_name(f"{out.stem}_{subset}.png")
        panels, missing = [], []
        for model, _ in MODELS:
            found = splits[f"{subset}/{model}"]
            rec = next((r for r in found[0].ok._record if r.get("seed") == 0), None) if found else None
            if rec is None:
                missing.append(f"{model} (no ok seed-0 run)")
                continue
            path = record_predictions(rec, roots, predictions)
            if not path.is_file():
                missing.append(f"{model} (no {path})")
                continue
            info, sets = read_predictions(path)
            why = "no test set" if "test" not in sets else _check(rec, info, sets["test"])
            if why:
                missing.append(f"{model} ({path}: {why})")
                continue
            panels.append((info, sets["test"]))
        text += ["", f"### {subset}", ""]
        if not panels:
            png.unlink(missing_ok=True)
            text.append("No predictions file found, so no plot: " + "; ".join(missing) + ".")
            continue
        png.parent.mkdir(parents=True, exist_ok=True)
        figure_for("test", panels, order="truth").savefig(png, dpi=90, metadata={"Software": None})
        text.append(f"![{subset}: predictions against the truth]({png.name})")
        if missing:
            text += ["", "Not plotted: " + "; ".join(missing) + "."]
    return "\n".join(text)


# ---------------------------------------------------------------- report


def other_records(frame: pd.DataFrame, splits: dict[str, list[Split]], reruns: Sequence[tuple[str, Split]]) -> str:
    if frame.empty:
        return ""
    used = {id(r) for found in splits.values() for s in found for r in s.records}
    used |= {id(r) for _, s in reruns for r in s.records}
    rest = frame[(frame.dataset == CMAPSS.dataset) & ~frame._record.map(lambda r: id(r) in used).astype(bool)]
    if rest.empty:
        return ""
    rest = rest.assign(subset=rest.config.map(subset_of).astype(str), tag=rest.tag.astype(str))
    counts = rest.groupby(["model", "subset", "tag", "status"], dropna=False).size().reset_index(name="records")
    return "\n".join(
        [
            "## Other C-MAPSS records",
            "",
            "Read but in none of the groups above (tag not its subset, or another model):",
            "",
            to_markdown(counts),
        ]
    )


def build_report(
    records: Sequence[dict],
    out: Path,
    command: str,
    roots: Sequence[Path] = (),
    predictions: Path | None = None,
    tune_records: Sequence[dict] | None = None,
    tune_dir: str | None = None,
    linear: pd.DataFrame | None = None,
    linear_source: str = "",
) -> str:
    """The report's Markdown, written to ``out`` with the subset PNGs beside it; ``linear``: the linear
    reference per subset (:func:`read_linear`), read from ``linear_source``."""
    frame = frame_of([r for r in records if r.get("dataset") == CMAPSS.dataset])
    splits = campaign_splits(frame)
    tune_frame = None
    if tune_records is not None:
        trials = [r for r in tune_records if r.get("dataset") == CMAPSS.dataset and r.get("tag") == TUNE_TAG]
        tune_frame = frame_of(trials) if trials else pd.DataFrame()
    rest = frame[frame.tag != TUNE_TAG] if not frame.empty else frame
    tuning, reruns = tuning_section(tune_frame, rest, splits, tune_dir)
    sections = [
        f"# {CMAPSS.title}",
        f"Generated by `{command}` from {len(frame)} C-MAPSS record(s) ({len(records)} read). Rerun the same "
        "command when records land. Not in the NAC paper: the comparison is with the RUL literature only.",
        results_section(splits, linear, linear_source),
        goal_section(splits, reruns),
        paired_section(splits),
        tuning,
        predictions_section(splits, out, roots, predictions),
        provenance_section(CMAPSS, splits).replace("## 4. Provenance", "## 6. Provenance", 1),
        other_records(frame, splits, reruns),
    ]
    markdown = "\n\n".join(s for s in sections if s) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    return markdown


def main(argv: Sequence[str] | None = None) -> int:
    """``make_report.py cmapss [--records DIR...] [--out FILE] [--predictions DIR] [--tune-records DIR]``;
    exit 2 with one line on bad input."""
    import argparse

    from nac.harness.records import load_records

    given = list(sys.argv[2:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="make_report.py cmapss", description="Write the C-MAPSS report (Markdown and a PNG per subset)."
    )
    parser.add_argument("--records", nargs="+", default=["results/records"], help="record folders or files")
    parser.add_argument("--out", default="results/reproduction_cmapss.md", help="the Markdown file")
    parser.add_argument(
        "--predictions",
        default=None,
        help="folder holding the .predictions.npz files at the records' relative paths (default: beside the records)",
    )
    parser.add_argument("--tune-records", default=None, help="the Optuna trials' records (<output root>/tune/records)")
    parser.add_argument(
        "--linear-reference",
        default=None,
        help=f"the linear reference's CSV (default {LINEAR_DEFAULT} when it exists; written by {LINEAR_COMMAND})",
    )
    args = parser.parse_args(given)
    given_paths = [*args.records, args.predictions, args.tune_records, args.linear_reference]
    missing = [p for p in given_paths if p and not Path(p).exists()]
    if missing:
        print(f"make_report: {', '.join(missing)} does not exist; pass existing folders", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.suffix != ".md":
        print(f"make_report: --out {out} must name a .md file", file=sys.stderr)
        return 2
    linear_source = args.linear_reference or (LINEAR_DEFAULT if Path(LINEAR_DEFAULT).exists() else "")
    try:
        linear = read_linear(Path(linear_source)) if linear_source else None
    except (ValueError, pd.errors.ParserError) as err:
        print(f"make_report: {err}", file=sys.stderr)
        return 2
    tune = load_records([args.tune_records]) if args.tune_records else None
    command = "python scripts/make_report.py " + shlex.join(["cmapss", *given])
    roots = [Path(p) for p in args.records]
    predictions = Path(args.predictions) if args.predictions else None
    build_report(
        load_records(args.records), out, command, roots, predictions, tune, args.tune_records, linear, linear_source
    )
    print(f"wrote {out} and {out.stem}_<subset>.png beside it (for subsets with predictions files)")
    return 0
