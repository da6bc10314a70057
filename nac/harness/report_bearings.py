"""The bearings report: the NAC paper's S on PRONOSTIA, XJTU-SY and HUST, and what it measures.

    python scripts/make_report.py bearings --records results/records --out results/reproduction_bearings.md

:data:`BEARINGS` has a group per model and setting (``paper``; ``clean`` with Time kept or dropped, with and
without look-ahead, ``GroupSpec.where``) and one table per named test set (:func:`bearing_sections`): S and
S per row with mean ± sample std and Student-t intervals, the paper's S, the Time-only reference read from
the CSVs of ``scripts/bearing_time_reference.py --out``, the bearings' sources; ``paper`` − ``clean`` and
Time kept − dropped on S per row with Welch intervals; a prediction-vs-truth PNG
(``<out stem>_predictions.png``) of the first test bearing per model family from fold 0 / seed 0
``.predictions.npz`` files; provenance. The groups, statistics and commands are those of
:mod:`nac.harness.report`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from nac.harness.report import (
    FOLDS,
    SEEDS,
    Difference,
    GroupSpec,
    ReportSpec,
    Split,
    _status,
    frame_of,
    other_records_section,
    provenance_section,
    splits_of,
    welch_interval,
)
from nac.harness.tables import (
    CONFIDENCE,
    PAPER_FIGURES,
    PER_ROW_DIGITS,
    Summary,
    _fmt,
    _fmt_interval,
    summarize,
    summary_table,
    to_markdown,
)

#: the bearing benchmark's models (campaign order) and their titles
BEARING_MODELS = (
    ("nac", "NAC (nac)"),
    ("nac_official", "NAC (nac_official)"),
    ("ltc", "LTC"),
    ("cfc", "CfC"),
    ("lstm", "LSTM"),
    ("transformer", "Transformer"),
)
#: (key, label, experiment, protocol, where, expected) of the bearing settings; `clean` twice: as
#: bearings_clean runs it (a row's prediction reads later rows of its window) and without look-ahead
#: (bearings_clean_causal: causal attention and stem)
BEARING_SETTINGS = (
    ("paper", "`paper`", "bearings_paper", "paper", (), FOLDS),
    *(
        (
            f"clean_{time}{'_causal' if causal else ''}",
            f"`clean`{' causal' if causal else ''}, Time {'kept' if time == 'time' else 'dropped'}",
            "bearings_clean_causal" if causal else "bearings_clean",
            "clean",
            (("dataset.builder.drop_time", time == "no_time"), ("dataset.causal", causal)),
            SEEDS,
        )
        for causal in (False, True)
        for time in ("time", "no_time")
    ),
)

BEARINGS = ReportSpec(
    dataset="bearings",
    title="Bearings: the NAC paper's S on PRONOSTIA, XJTU-SY and HUST, and what it measures",
    metric="score",
    groups=tuple(
        GroupSpec(f"{model}/{key}", f"{title}, {label}", experiment, model, protocol, None, expected, where)
        for key, label, experiment, protocol, where, expected in BEARING_SETTINGS
        for model, title in BEARING_MODELS
    ),
    tests=(("pronostia", "PRONOSTIA Bearing1_1"), ("xjtu", "XJTU-SY Bearing1_1"), ("hust", "HUST Bearing1")),
    families=(("NAC", ("nac", "nac_official")), ("recurrent", ("ltc", "cfc", "lstm")), ("attention", ("transformer",))),
)


# ---------------------------------------------------------------- bearings: named test sets, S and S per row

#: columns of the Time-only CSV (scripts/bearing_time_reference.py --out) the report reads
TIME_ONLY_COLUMNS = (
    "test",
    "rows",
    "folds",
    "S mean",
    "S std",
    "S 95% low",
    "S 95% high",
    "S/row mean",
    "S/row std",
    "S/row 95% low",
    "S/row 95% high",
)
#: decimals of S (summed over a bearing's rows; tens)
S_DIGITS = 2
CI = f"{CONFIDENCE:.0%} CI"
BEARING_COLUMNS = [
    "model",
    "protocol",
    "runs (ok/total)",
    "S",
    f"S {CI}",
    "S/row",
    f"S/row {CI}",
    "n",
    "status",
    "settings",
]
#: the run whose predictions are plotted per setting: (setting key, record column, value)
PLOT_RUNS = (("paper", "fold", 0), ("clean_time", "seed", 0), ("clean_no_time", "seed", 0))


def read_time_only(path: Path | str | None) -> dict[str, dict[str, Any]] | None:
    """The Time-only reference per test set name from ``scripts/bearing_time_reference.py --out`` (None when
    the file is absent); a ValueError naming the missing columns when it is another CSV."""
    if path is None or not Path(path).is_file():
        return None
    table = pd.read_csv(path)
    missing = [column for column in TIME_ONLY_COLUMNS if column not in table]
    if missing:
        raise ValueError(
            f"{path} lacks the column(s) {', '.join(missing)}: pass a CSV written by "
            "scripts/bearing_time_reference.py --out"
        )
    return {str(row["test"]): row.to_dict() for _, row in table.iterrows()}


def _csv_summary(row: dict, figure: str) -> Summary:
    """:class:`Summary` of one figure (``S`` or ``S/row``) of a Time-only CSV row (NaN std: one fit)."""
    value = lambda key: None if pd.isna(row[f"{figure} {key}"]) else float(row[f"{figure} {key}"])  # noqa: E731
    return Summary(int(row["folds"]), value("mean"), value("std"), value("95% low"), value("95% high"))


def _score_cells(score: Summary, per_row: Summary, single: str = "single run") -> dict[str, str | None]:
    return {
        "S": _fmt(score, S_DIGITS),
        f"S {CI}": _fmt_interval(score, S_DIGITS, single),
        "S/row": _fmt(per_row, PER_ROW_DIGITS),
        f"S/row {CI}": _fmt_interval(per_row, PER_ROW_DIGITS, single),
        "n": str(score.n),
    }


def _numbers(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce")


def _bearing_row(split: Split, title: str, protocol: str) -> dict[str, Any]:
    row = summary_table(split.frame.drop(columns=["_record", "input_mode"]), merge_commits=True).iloc[0]
    ok = split.ok
    return {
        "model": title,
        "protocol": protocol,
        "runs (ok/total)": row["runs"],
        **_score_cells(summarize(_numbers(ok.test_score)), summarize(_numbers(ok.test_score_per_row))),
        "status": _status(split, row["status"]),
        "settings": split.label(),
    }


def _time_only_row(time_only: dict | None, name: str, protocol: str, command: str) -> dict[str, Any]:
    row = (time_only or {}).get(name)
    base = {"model": "Time only (a line on Time)", "protocol": protocol, "settings": f"`{command}`"}
    if row is None:
        return {**base, "runs (ok/total)": "-", "status": "not run yet" if time_only is None else f"no row {name}"}
    return {
        **base,
        "runs (ok/total)": f"{int(row['folds'])} fit(s)",
        **_score_cells(_csv_summary(row, "S"), _csv_summary(row, "S/row"), single="single fit"),
        "status": "reference",
    }


def _test_rows(records: Sequence[dict], name: str, time_only: Iterable[dict | None]) -> int | None:
    """Rows of test set ``name``: from a record's dataset meta, else from a Time-only CSV."""
    for rec in records:
        extra = (rec.get("dataset_meta") or {}).get("extra") or {}
        bearing = ((extra.get("bearings") or {}).get("test") or {}).get(name)
        if bearing and (extra.get("rows") or {}).get(bearing):
            return int(extra["rows"][bearing])
    for table in time_only:
        if table and name in table and not pd.isna(table[name]["rows"]):
            return int(table[name]["rows"])
    return None


def sources_note(spec: ReportSpec, records: Sequence[dict]) -> str:
    """Where each protocol's bearings came from (``dataset_meta.extra.bearing_sources`` / ``mixed_sources``)."""
    from nac.harness.tables import data_sources

    records = [r for r in records if r.get("dataset") == spec.dataset]
    if not records:
        return "Sources: no records yet, so not known."
    lines = ["Sources of the bearings, from the records (`dataset_meta.extra.bearing_sources`, `mixed_sources`):", ""]
    for protocol in dict.fromkeys(str(r.get("protocol")) for r in records):
        mine = [r for r in records if str(r.get("protocol")) == protocol]
        extracted = sorted({name for r in mine for name in data_sources(r)[1]})
        mixed = sum(bool(((r.get("dataset_meta") or {}).get("extra") or {}).get("mixed_sources")) for r in mine)
        unknown = sum(not data_sources(r)[0] for r in mine)
        tests = {}
        for r in mine:
            extra = (r.get("dataset_meta") or {}).get("extra") or {}
            for name, bearing in ((extra.get("bearings") or {}).get("test") or {}).items():
                tests.setdefault(name, set()).add(f"{bearing} {(extra.get('bearing_sources') or {}).get(bearing, '?')}")
        lines.append(
            f"- `{protocol}`, {len(mine)} record(s): mixed sources in {mixed}; extracted features: "
            f"{', '.join(extracted) or 'none'}; test bearings: "
            f"{'; '.join(', '.join(sorted(v)) for v in tests.values()) or 'not recorded'}"
            + (f"; {unknown} record(s) name no sources" if unknown else "")
            + "."
        )
    lines += [
        "",
        "Bearings marked extracted were computed by this project's extractor from raw PRONOSTIA "
        "(`bearings/extracted/`): their kurtosis, skewness, mean, std and Time follow the authors' definitions, "
        "their energy, dominant frequency, spectral entropy and temperature do not (docs/PROTOCOLS.md section "
        "3). Where a training bearing is extracted, every test score is of a model trained on other features "
        "than the authors'; where the test bearing is, it is also scored on them. Either way the comparison "
        "with the paper's figures is not like for like.",
    ]
    return "\n".join(lines)


def bearing_table(
    spec: ReportSpec,
    name: str,
    title: str,
    splits: dict[str, list[Split]],
    time_only: dict[str, dict | None],
    n_rows: int | None,
) -> str:
    """One test bearing: the paper's figure, every group's S and S/row, the Time-only references."""
    titles = dict(BEARING_MODELS)
    paper = PAPER_FIGURES.get((f"{spec.dataset}/{name}", "score"))
    rows, others, gaps = [], [], []
    for key, label, *_ in BEARING_SETTINGS:
        for model, model_title in BEARING_MODELS:
            found = splits[f"{model}/{key}"]
            if not found:
                rows.append({"model": model_title, "protocol": label, "runs (ok/total)": "0", "status": "not run yet"})
                continue
            rows.append(_bearing_row(found[0], model_title, label))
            others += [_bearing_row(s, model_title, label) for s in found[1:]]
            if key == "paper" and model in ("nac", "nac_official"):
                row = summary_table(found[0].frame.drop(columns=["_record", "input_mode"]), merge_commits=True).iloc[0]
                gaps.append(f"{titles[model]}: {row.get('vs paper') or 'no ok runs'}")
        if key in ("paper", "clean_time"):
            protocol = "paper" if key == "paper" else "clean"
            command = "scripts/bearing_time_reference.py" + ("" if key == "paper" else " --protocol clean")
            rows.append(_time_only_row(time_only.get(protocol), name, label, command))
    per_row = (
        f" (S/row {paper / n_rows:.{PER_ROW_DIGITS}f} if the authors' file has the {n_rows:,} rows ours has)"
        if paper is not None and n_rows
        else ""
    )
    text = [
        f"### {title} (`{name}`)",
        "",
        f"Paper: **S = {paper}** for NAC under `paper`{per_row}." if paper is not None else "Paper: no figure.",
        "",
        to_markdown(pd.DataFrame(rows + others, columns=BEARING_COLUMNS)),
    ]
    if gaps:
        text += ["", "Against the paper's figure (`tables.paper_gaps`): " + "; ".join(gaps) + "."]
    return "\n".join(text)


def time_only_note(time_only: dict[str, dict | None], paths: dict[str, str]) -> str:
    """Where each Time-only reference comes from (its CSV's command, commit and date), or how to make it."""
    parts = []
    for protocol, path in paths.items():
        table = time_only.get(protocol)
        flag = "" if protocol == "paper" else " --protocol clean"
        if table is None:
            parts.append(f"`{protocol}`: not run yet (`python scripts/bearing_time_reference.py{flag} --out {path}`)")
            continue
        row = next(iter(table.values()), {})
        made = ", ".join(
            f"{key} `{row[key]}`" if key == "command" else f"{key} {row[key]}"
            for key in ("command", "commit", "date")
            if key in row and not pd.isna(row[key])
        )
        parts.append(f"`{protocol}`: {path}" + (f" ({made})" if made else ""))
    return "Time-only references: " + "; ".join(parts) + "."


def bearing_results_section(
    spec: ReportSpec,
    by_test: dict[str, dict[str, list[Split]]],
    records: Sequence[dict],
    time_only: dict[str, dict | None],
    time_only_paths: dict[str, str],
) -> str:
    text = [
        "## 1. Per test bearing: the paper's figure, `paper`, Time only, `clean`",
        "",
        "S sums the asymmetric score over every row of the test bearing (lower is better); S/row is S divided by "
        "the bearing's rows, so bearings of different length compare. Figures: mean ± sample std (ddof 1) over "
        f"ok runs (5 folds under `paper`, seeds 0-2 under `clean`); CI: Student-t {CONFIDENCE:.0%} interval of "
        "the mean; n: ok runs. `paper` selects each fold's epoch on its validation MSE and standardises every "
        "test bearing on its own rows (it leaks Time: the label is almost Time / Time at failure); `clean` leaves "
        "bearings out, selects on a validation bearing's S and fits one scaler on the training bearings; Time "
        "kept or dropped (`dataset.builder.drop_time`). Time only: a straight line on the Time input alone on the "
        f"same split (`scripts/bearing_time_reference.py`; read from {time_only_paths['paper']} and "
        f"{time_only_paths['clean']}). Settings: the runs' config differences from the experiment (other settings, "
        "e.g. fewer epochs, are listed below the main rows and left out of section 2). The paper's figures are "
        "attributed from a results aggregator, not checked against the PDF.",
        "",
        sources_note(spec, records),
        "",
        time_only_note(time_only, time_only_paths),
    ]
    for name, title in spec.tests:
        n_rows = _test_rows(records, name, time_only.values())
        text += ["", bearing_table(spec, name, title, by_test[name], time_only, n_rows)]
    missing = sorted({g.experiment for g in spec.groups if not by_test[spec.tests[0][0]][g.key]})
    if missing:
        text += ["", "Not run yet: groups of " + ", ".join(f"`nac-bench experiment={e}`" for e in missing) + "."]
    return "\n".join(text)


def _fmt_diff_digits(d: Difference, digits: int) -> tuple[str, str]:
    if d.diff is None:
        return "not run yet", "-"
    if d.low is None:
        return f"{d.diff:+.{digits}f}", "needs ≥ 2 runs on each side"
    return f"{d.diff:+.{digits}f}", f"[{d.low:+.{digits}f}, {d.high:+.{digits}f}]"


def protocol_effect_section(spec: ReportSpec, by_test: dict[str, dict[str, list[Split]]]) -> str:
    """Per bearing and model, on S/row: ``paper`` − ``clean`` (Time kept) and Time kept − Time dropped."""
    comparisons = (
        ("paper", "clean_time", "`paper` − `clean` Time kept (the protocol)"),
        ("clean_time", "clean_no_time", "`clean` Time kept − Time dropped (the Time input)"),
        ("clean_time", "clean_time_causal", "`clean` Time kept: as run − causal (the look-ahead)"),
    )
    rows = []
    for name, title in spec.tests:
        for model, model_title in BEARING_MODELS:
            for a, b, label in comparisons:
                sides = [by_test[name][f"{model}/{key}"] for key in (a, b)]
                values = [_numbers(found[0].ok.test_score_per_row) if found else [] for found in sides]
                d = welch_interval(*values)
                value, interval = _fmt_diff_digits(d, PER_ROW_DIGITS)
                rows.append(
                    {
                        "test bearing": title,
                        "model": model_title,
                        "difference (S/row)": label,
                        "value": value,
                        CI: interval,
                        "interval": "Welch, unpaired" + (f", df {d.df:.1f}" if d.df else ""),
                        "runs": f"{d.n_a} vs {d.n_b}",
                    }
                )
    return "\n".join(
        [
            "## 2. The protocol's effect and the Time input's, per bearing (S/row)",
            "",
            "For each model and test bearing: the mean S/row under `paper` minus that under `clean` with Time kept "
            "(leave-bearings-out, training-only scaler, windows; the same inputs), and under `clean` with Time kept "
            "minus Time dropped (what the Time input adds). S/row, not S, because the three bearings differ in length. "
            "The sides are different runs (folds vs seeds, or seeds of two settings), so each interval is Welch's "
            f"(Student t with Welch–Satterthwaite degrees of freedom), {CONFIDENCE:.0%}. Negative: the first side "
            "scores better (lower S). Main settings only (section 1).",
            "",
            to_markdown(pd.DataFrame(rows)),
        ]
    )


def _prediction_file(split: Split, column: str, value: int) -> Path | None:
    """The predictions file of the split's ok run with ``column == value`` (None when none was saved)."""
    from nac.harness.predictions import predictions_path

    ok = split.ok
    for rec in ok[_numbers(ok[column]) == value]._record:
        path = predictions_path(rec["_path"]) if rec.get("_path") else None
        if path is not None and path.is_file():
            return path
    return None


def bearing_predictions_figure(
    cells: dict[tuple[str, str], list[tuple[dict, Any]]],
    families: Sequence[str],
    columns: Sequence[tuple[str, str]],
    test: str,
):
    """A panel per (family, setting) column: each model's predictions and the truth of test set ``test``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from nac.harness.prediction_plots import overlay

    fig = Figure(figsize=(7 * len(columns), 2.9 * len(families)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(families), len(columns), squeeze=False)
    for i, family in enumerate(families):
        for j, (key, label) in enumerate(columns):
            ax, panels = axes[i, j], cells.get((family, key), [])
            ax.set_title(f"{family}, {label}".replace("`", ""), fontsize=9)
            if not panels:
                ax.text(0.5, 0.5, "no predictions saved", ha="center", va="center", transform=ax.transAxes)
                ax.set_axis_off()
                continue
            overlay(ax, test, panels, order="rows")
            ax.set_xlabel("row of the test bearing (file order)")
            ax.set_ylabel("degradation")
            ax.grid(True, alpha=0.3)
    return fig


def bearing_predictions_section(spec: ReportSpec, splits: dict[str, list[Split]], png: Path) -> str:
    """Prediction-vs-truth PNG of the first test bearing, a row per model family, a column per setting."""
    from nac.harness.predictions import read_predictions

    name, title = spec.tests[0]
    labels = {key: label for key, label, *_ in BEARING_SETTINGS}
    cells: dict[tuple[str, str], list] = {}
    missing, used = [], []
    for key, column, value in PLOT_RUNS:
        for family, models in spec.families:
            for model in models:
                found = splits[f"{model}/{key}"]
                path = _prediction_file(found[0], column, value) if found else None
                info, sets = read_predictions(path) if path is not None else ({}, {})
                if name not in sets:
                    missing.append(f"{model} ({labels[key]}, {column} {value})")
                    continue
                cells.setdefault((family, key), []).append((info, sets[name]))
                used.append(path)
    columns = [
        (key, f"{labels[key]}, {column} {value}")
        for key, column, value in PLOT_RUNS
        if any((family, key) in cells for family, _ in spec.families)
    ]
    text = [f"## 3. Predictions against the truth on {title}", ""]
    if not columns:
        png.unlink(missing_ok=True)
        return "\n".join(
            text
            + [
                "No predictions saved yet: runs write them with `+trainer.save_predictions=true` "
                "(`<record stem>.predictions.npz` beside the record)."
            ]
        )
    figure = bearing_predictions_figure(cells, [family for family, _ in spec.families], columns, name)
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=100, metadata={"Software": None})
    families = "; ".join(f"{family}: {', '.join(models)}" for family, models in spec.families)
    text += [
        f"![Predictions on {title}]({png.name})",
        "",
        f"`{png.name}`: a row per model family ({families}), "
        "a column per setting, from the `.predictions.npz` of fold 0 (`paper`) or seed 0 (`clean`), main "
        "settings; dots: each model's prediction per row in the bearing's row order, line: the truth; the legend "
        "gives RMSE and S recomputed from the file.",
    ]
    if missing:
        text += ["", "No predictions saved: " + "; ".join(missing) + "."]
    return "\n".join(text)


def bearing_sections(
    spec: ReportSpec, records: Sequence[dict], out: Path, time_only_paths: dict[str, str]
) -> list[str]:
    """Sections of a report over named test sets (the bearings; see :data:`BEARINGS`)."""
    names = [name for name, _ in spec.tests]
    frame = frame_of(records, tests=names)
    by_test = {
        name: {g.key: splits_of(frame, f"{spec.dataset}/{name}", g) if not frame.empty else [] for g in spec.groups}
        for name in names
    }
    time_only = {protocol: read_time_only(path) for protocol, path in time_only_paths.items()}
    first = by_test[names[0]]  # every record has a row for every test set (failed ones too)
    return [
        bearing_results_section(spec, by_test, records, time_only, time_only_paths),
        protocol_effect_section(spec, by_test),
        bearing_predictions_section(spec, first, out.with_name(f"{out.stem}_predictions.png")),
        provenance_section(spec, first),
        other_records_section(spec, frame, f"{spec.dataset}/{names[0]}"),
    ]


#: default Time-only CSVs per protocol (scripts/bearing_time_reference.py --out)
TIME_ONLY_DEFAULTS = {"paper": "results/bearings_time_only_paper.csv", "clean": "results/bearings_time_only_clean.csv"}
