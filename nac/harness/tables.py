"""Aggregate run records into a table: model x dataset x protocol, mean ± std over seeds/folds."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd


def records_frame(records: Iterable[dict]) -> pd.DataFrame:
    """One row per record with the columns tables need."""
    rows = []
    for rec in records:
        metric = rec.get("metric")
        rows.append({
            "dataset": rec.get("dataset"), "protocol": rec.get("protocol"), "model": rec.get("model"),
            "tag": rec.get("tag", ""), "seed": rec.get("seed"), "fold": rec.get("fold"), "status": rec.get("status"),
            "metric": metric,
            "test": (rec.get("test") or {}).get(metric) if metric else None,
            "val": (rec.get("val") or {}).get(metric) if metric else None,
            "parameters": rec.get("parameters_sequence_model"),
            "parameters_total": rec.get("parameters"),
            "train_s_per_epoch": rec.get("train_time_per_epoch_s"),
            "latency_ms": 1e3 * rec["latency_per_sample_s"] if rec.get("latency_per_sample_s") is not None else None,
            "peak_memory_mb": rec.get("peak_memory_mb"), "memory_method": rec.get("peak_memory_method"),
        })
    return pd.DataFrame(rows)


def _mean_std(series: pd.Series, scale: float = 1.0, digits: int = 2) -> str:
    values = series.dropna().astype(float) * scale
    if values.empty:
        return "-"
    if len(values) == 1:
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=0):.{digits}f}"


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Group ok runs by (dataset, protocol, model, tag); mean ± population std (ddof 0), as the paper reports."""
    if frame.empty:
        return pd.DataFrame()
    rows = []
    for key, group in frame.groupby(["dataset", "protocol", "model", "tag"], sort=False, dropna=False):
        ok = group[group.status == "ok"]
        metric = ok.metric.dropna().iloc[0] if not ok.metric.dropna().empty else group.metric.iloc[0]
        scale = 100.0 if metric == "accuracy" else 1.0
        label = f"test {metric}" + (" (%)" if scale == 100.0 else "")
        rows.append({
            "dataset": key[0], "protocol": key[1], "model": key[2], "tag": key[3],
            "runs": f"{len(ok)}/{len(group)}",
            "metric": label,
            "test": _mean_std(ok.test, scale),
            "val": _mean_std(ok.val, scale),
            "params": int(ok.parameters.dropna().iloc[0]) if not ok.parameters.dropna().empty else None,
            "train s/epoch": _mean_std(ok.train_s_per_epoch),
            "latency ms": _mean_std(ok.latency_ms, digits=3),
            "peak MB": _mean_std(ok.peak_memory_mb, digits=0),
            "memory": ", ".join(sorted(set(ok.memory_method.dropna()))),
        })
    table = pd.DataFrame(rows)
    if (table.tag == "").all():
        table = table.drop(columns="tag")
    return table


def to_markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False) if not table.empty else "(no records)"
