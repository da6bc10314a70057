"""Aggregate run records into tables: model x dataset x protocol, mean ± std over seeds or folds.

A record with named test sets (``tests``, e.g. one per held-out bearing) gives one row per set,
with dataset ``<dataset>/<name>``. Figures of post-training evaluations (``evaluations``, e.g.
closed-loop driving) become columns ``<evaluation> <figure>`` (mean ± std).

Runs are grouped by dataset, protocol, model, tag and *settings* (the record's ``group_hash``:
the config with seed and fold neutralised), so a sweep over, say, learning rates never averages
different settings together. Only ``ok`` runs enter the mean; a group with failed runs or (paper
protocol) missing folds is marked incomplete in its ``status`` column.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

#: Headline NAC figures attributed to the paper (PROTOCOLS.md; from a results aggregator, not
#: checked against the PDF), keyed by (dataset, metric), in the units tables print.
PAPER_FIGURES: dict[tuple[str, str], float] = {
    ("emnist", "accuracy"): 96.64,
    ("par", "accuracy"): 90.18,
    ("carracing", "accuracy"): 80.72,
    ("udacity", "mse"): 0.017,
    ("bearings/pronostia", "score"): 37.5,
    ("bearings/xjtu", "score"): 22.87,
    ("bearings/hust", "score"): 27.82,
}
#: models the paper figures belong to
NAC_MODELS = ("nac", "nac_official")
PERCENT_METRICS = ("accuracy",)
#: prefix of the columns that hold evaluation figures in :func:`records_frame`
EVAL_PREFIX = "eval:"


def records_frame(records: Iterable[dict]) -> pd.DataFrame:
    """One row per record with the columns tables need."""
    rows = []
    for rec in records:
        metric = rec.get("metric")
        protocol_cfg = (rec.get("config") or {}).get("protocol") or {}
        row = {
            "dataset": rec.get("dataset"), "protocol": rec.get("protocol"), "model": rec.get("model"),
            "tag": rec.get("tag", ""), "group": rec.get("group_hash", ""), "seed": rec.get("seed"),
            "fold": rec.get("fold"), "n_folds": protocol_cfg.get("n_folds"), "status": rec.get("status"),
            "metric": metric,
            "test": (rec.get("test") or {}).get(metric) if metric else None,
            "val": (rec.get("val") or {}).get(metric) if metric else None,
            "parameters": rec.get("parameters_sequence_model"),
            "train_s_per_epoch": rec.get("train_time_per_epoch_s"),
            "latency_ms": 1e3 * rec["latency_per_sample_s"] if rec.get("latency_per_sample_s") is not None else None,
            "peak_memory_mb": rec.get("peak_memory_mb"), "memory_method": rec.get("peak_memory_method"),
        }
        for evaluation, figures in (rec.get("evaluations") or {}).items():
            for key, value in (figures or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    row[f"{EVAL_PREFIX}{evaluation} {key}"] = value
        named = rec.get("tests") or {}
        if not named:
            rows.append(row)
        for name, metrics in named.items():
            rows.append({**row, "dataset": f"{rec.get('dataset')}/{name}",
                         "test": (metrics or {}).get(metric) if metric else None})
    return pd.DataFrame(rows)


def _stats(series: pd.Series, scale: float = 1.0) -> tuple[float | None, float | None]:
    values = series.dropna().astype(float) * scale
    if values.empty:
        return None, None
    return float(values.mean()), float(values.std(ddof=0))


def _fmt(mean: float | None, std: float | None, n: int, digits: int) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" if n == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _completeness(group: pd.DataFrame, ok: pd.DataFrame) -> str:
    notes = []
    failed = len(group) - len(ok)
    if failed:
        notes.append(f"{failed} not ok ({', '.join(sorted(set(group.status) - {'ok'}))})")
    if (group.protocol == "paper").all():
        n_folds = group.n_folds.dropna()
        expected = int(n_folds.iloc[0]) if not n_folds.empty else 5
        seen = ok.fold.dropna().nunique()
        if seen < expected:
            notes.append(f"{seen}/{expected} folds")
    return "incomplete: " + "; ".join(notes) if notes else "complete"


def _digits(metric: str) -> int:
    return 2 if metric in PERCENT_METRICS else 4


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean ± population std (ddof 0, as the paper reports) of every group of runs."""
    if frame.empty:
        return pd.DataFrame()
    frame = frame.copy()
    frame["group"] = frame["group"].fillna("")
    variants = frame.groupby(["dataset", "protocol", "model", "tag"], dropna=False)["group"].nunique()
    evaluation_columns = [c for c in frame.columns if c.startswith(EVAL_PREFIX)]
    rows = []
    for key, group in frame.groupby(["dataset", "protocol", "model", "tag", "group"], sort=False, dropna=False):
        dataset, protocol, model, tag, settings = key
        ok = group[group.status == "ok"]
        metric = ok.metric.dropna().iloc[0] if not ok.metric.dropna().empty else group.metric.iloc[0]
        scale = 100.0 if metric in PERCENT_METRICS else 1.0
        mean, std = _stats(ok.test, scale)
        paper = PAPER_FIGURES.get((dataset, metric)) if model in NAC_MODELS else None
        rows.append({
            "dataset": dataset, "protocol": protocol, "model": model, "tag": tag,
            "settings": settings if variants.get((dataset, protocol, model, tag), 1) > 1 else "",
            "metric": f"{metric} (%)" if scale == 100.0 else metric,
            "test": _fmt(mean, std, len(ok), _digits(metric)),
            "val": _fmt(*_stats(ok.val, scale), len(ok), _digits(metric)),
            "runs": f"{len(ok)}/{len(group)}",
            "status": _completeness(group, ok),
            "paper (NAC)": paper,
            "diff vs paper": None if paper is None or mean is None else round(mean - paper, _digits(metric)),
            "params": int(ok.parameters.dropna().iloc[0]) if not ok.parameters.dropna().empty else pd.NA,
            "train s/epoch": _fmt(*_stats(ok.train_s_per_epoch), len(ok), 2),
            "latency ms": _fmt(*_stats(ok.latency_ms), len(ok), 3),
            "peak MB": _fmt(*_stats(ok.peak_memory_mb), len(ok), 0),
            "memory": ", ".join(sorted(set(ok.memory_method.dropna()))),
            **{column[len(EVAL_PREFIX):]: _fmt(*_stats(ok[column]), int(ok[column].notna().sum()), 2)
               for column in evaluation_columns},
        })
    table = pd.DataFrame(rows)
    table["params"] = table["params"].astype("Int64")  # whole numbers even where a group has none
    evaluation_names = [column[len(EVAL_PREFIX):] for column in evaluation_columns]
    for optional in ("tag", "settings", "paper (NAC)", "diff vs paper", *evaluation_names):
        if table[optional].isna().all() or table[optional].isin(["", "-"]).all():
            table = table.drop(columns=optional)
    return table


def to_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown, every cell printed exactly as formatted (no re-parsing of numbers,
    which would drop trailing zeros); missing values (a group without ok runs) show as ``-``."""
    if table.empty:
        return "(no records)"
    cells = table.astype(object).where(table.notna(), "-").map(str)
    return cells.to_markdown(index=False, disable_numparse=True)
