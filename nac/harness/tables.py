"""Aggregate run records into tables: mean ± sample std, a 95 % interval, and paired comparisons.

A record with named test sets (``tests``, e.g. one per held-out bearing) gives one row per set,
with dataset ``<dataset>/<name>``. Regression records with the asymmetric score get ``test S/row``
(S divided by the set's rows) and, where the primary metric is another (the bearings' ``paper``
runs select on MSE), ``test S`` with its interval. Records that name each bearing's source
(``dataset_meta.extra.bearing_sources``) get a ``sources`` column: ``published``, ``extracted`` or
``mixed (extracted: ...)``; extracted bearings are a gap in the paper comparison. Figures of
post-training evaluations (``evaluations``, e.g. closed-loop driving) become columns
``<evaluation> <figure>``.

Groups (:func:`summary_table`): runs are averaged together only when they share dataset, protocol,
model, tag, *settings* (the record's ``group_hash``: the config with seed and fold neutralised, the
data digest and the device type) and the *code* they ran (the record's ``git_commit``; pass
``merge_commits=True`` to pool commits). Each row names its commit and data digest (short).

Statistics: only ``ok`` runs enter a group's figures; ``test`` is mean ± sample std (ddof 1) and
``test 95% CI`` the Student-t interval of the mean (:data:`CONFIDENCE`); a group of one run shows the
mean alone and ``single run``. ``runs`` is ok/total; ``status`` marks a group incomplete when runs
failed or, under the paper protocol, folds are missing.

The paper's NAC figure (:data:`PAPER_FIGURES`) and the difference are shown only where the group is
like for like (:func:`paper_gaps`, with the paper's setup per dataset in :data:`PAPER_SETUPS`);
otherwise both are ``-`` and ``vs paper`` says why.

Two models are compared with :func:`paired_comparison`: their ok runs on the same dataset,
protocol and settings (other than the model) are paired by seed (clean) or fold (paper), and the
mean difference gets its sample std and a t interval. Use it before ranking two models.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from scipy import stats

from nac.harness.identity import run_hash

#: Headline NAC figures attributed to the paper (docs/PROTOCOLS.md; from a results aggregator, not
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
#: coverage of the intervals of the mean (Student t)
CONFIDENCE = 0.95
#: decimals of the score per row (S / rows, about 1e-3 on the bearings)
PER_ROW_DIGITS = 6
#: the paper protocol's folds and split seed (configs/protocol/paper.yaml, docs/PROTOCOLS.md)
PAPER_N_FOLDS, PAPER_SPLIT_SEED = 5, 42


@dataclass(frozen=True)
class PaperSetup:
    """How the paper's NAC figure for one dataset was obtained (docs/PROTOCOLS.md sections 1-3).

    ``epochs``: the training budget; ``data``: ``dataset.builder`` settings that select the paper's
    data; ``nac``: the NAC model settings; ``unpublished``: why no run here can use the paper's data
    (empty when it can).
    """

    epochs: int
    data: dict[str, Any] = field(default_factory=dict)
    nac: dict[str, Any] = field(default_factory=dict)
    unpublished: str = ""
    #: the validation metric the authors' checkpoint was chosen on, where it differs from the figure's
    #: metric (bearings: val_loss, MSE); None: not checked
    select_on: str | None = None
    #: the metric of the paper's figure when the runs' primary metric may be another (bearings: S)
    figure_metric: str | None = None


_NAC = {"dense": False, "pairwise": False, "causal": False}  # not an ablation (NAC-FC, NAC-PW) nor causal
_NAC_EULER = {**_NAC, "topk": 10, "sparsity": 0.7, "mode": "euler", "euler_steps": 6, "delta_t": 1.5}
#: per dataset (the part before ``/`` of a table row's dataset): the setup behind the paper's figure
PAPER_SETUPS: dict[str, PaperSetup] = {
    "emnist": PaperSetup(
        75,
        {"limit": None, "max_events": 256, "threshold": 128, "input_mode": "authors"},
        {"d_model": 64, "num_heads": 16, "backbone_units": 170, **_NAC_EULER},
    ),
    "par": PaperSetup(
        100,
        {"limit": None, "person": "B"},  # NAC: the layer's defaults besides width/heads/backbone
        {**_NAC, "d_model": 64, "num_heads": 16, "topk": 8, "mode": "exact", "sparsity": 0.5, "backbone_units": 170},
    ),  # their layer's AutoNCP: 64 + floor(64 / 0.6) units
    "carracing": PaperSetup(
        70,
        {"limit": None, "frames": 1},
        {**_NAC, "d_model": 64, "num_heads": 16, "topk": 10, "sparsity": 0.7},
        unpublished="not the paper's recording",
    ),
    "udacity": PaperSetup(
        10,
        {"limit": None},
        {**_NAC, "d_model": 64, "num_heads": 16, "topk": 10, "sparsity": 0.7},
        unpublished="not the paper's recording",
    ),
    "bearings": PaperSetup(
        50,
        {
            "limit": None,
            "drop_time": False,
            "train_bearings": ["Bearing1_4", "Bearing1_5", "Bearing1_6", "Bearing1_7"],
            "test_bearings": {"pronostia": "Bearing1_1", "xjtu": "Bearing1_1", "hust": "Bearing1"},
        },
        {"d_model": 16, "num_heads": 8, "activation": "relu", **_NAC_EULER},
        select_on="mse",
        figure_metric="score",
    ),
}
#: column of :func:`records_frame` holding each record's (named) test figure of a metric other than its primary
SCORE_COLUMNS = {"score": "test_score", "score_per_row": "test_score_per_row"}


def _get(config: dict | None, dotted: str) -> Any:
    """``config['a']['b']`` for ``'a.b'``; None where any part is missing."""
    node: Any = config or {}
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _data_gap(key: str, value: Any, paper: Any) -> str:
    if key == "limit":
        return "data limited"
    if key.endswith("bearings"):
        return "substituted bearings"
    return f"{key} {value} (paper {paper})" if not isinstance(paper, (list, dict)) else f"other {key}"


def paper_gaps(
    dataset: str,
    protocol: str,
    model: str,
    config: dict | None,
    ok_folds: Iterable[int],
    extracted: Iterable[str] = (),
    selected_on: str | None = None,
) -> list[str]:
    """Why a group of runs is not like for like with the paper's NAC figure; [] when it is.

    Like for like means: a model of :data:`NAC_MODELS` with the paper's NAC settings for the dataset
    (:data:`PAPER_SETUPS`); the ``paper`` protocol with its 5 folds and split seed 42, every fold
    present among the ok runs; at least the paper's epochs (early stopping is fine) with no cap on
    batches per epoch; and the paper's data (no ``limit``, the paper's bearings or person; never
    where the paper's recordings are unpublished). ``config`` is the resolved config of one run of
    the group (they share it but for seed and fold); ``ok_folds`` the folds of its ok runs;
    ``extracted`` the bearings its runs read from this project's extracted features instead of the
    authors' files; ``selected_on`` the validation metric that chose its epochs (the records' ``metric``),
    checked where :attr:`PaperSetup.select_on` names the authors'.
    """
    setup = PAPER_SETUPS[dataset.split("/")[0]]
    gaps = []
    if model not in NAC_MODELS:
        gaps.append("NAC ablation" if model.startswith("nac") else "not a NAC model")
    if protocol != "paper":
        gaps.append(f"{protocol} protocol")
    if setup.unpublished:
        gaps.append(setup.unpublished)
    builder = _get(config, "dataset.builder") or {}
    gaps += [_data_gap(key, builder.get(key), paper) for key, paper in setup.data.items() if builder.get(key) != paper]
    extracted = sorted(extracted)
    if extracted:
        gaps.append(f"extracted features for {', '.join(extracted)}")
    if protocol == "paper" and setup.select_on and selected_on and selected_on != setup.select_on:
        gaps.append(f"epoch chosen on validation {selected_on} (paper {setup.select_on})")
    epochs, batches = _get(config, "trainer.epochs"), _get(config, "trainer.limit_train_batches")
    if epochs is None:
        gaps.append("epochs not recorded")
    elif epochs < setup.epochs:
        gaps.append(f"{epochs} of {setup.epochs} epochs")
    if batches is not None:
        gaps.append(f"{batches} batches per epoch")
    if model in NAC_MODELS:
        gaps += [
            f"{key} {_get(config, 'model.' + key)} (paper {value})"
            for key, value in setup.nac.items()
            if _get(config, "model." + key) != value
        ]
    if protocol == "paper":
        n_folds, split_seed = _get(config, "protocol.n_folds"), _get(config, "protocol.split_seed")
        if n_folds != PAPER_N_FOLDS:
            gaps.append(f"{n_folds}-fold (paper {PAPER_N_FOLDS})")
        if split_seed != PAPER_SPLIT_SEED:
            gaps.append(f"split seed {split_seed} (paper {PAPER_SPLIT_SEED})")
        present = len(set(ok_folds) & set(range(PAPER_N_FOLDS)))
        if present < PAPER_N_FOLDS:
            gaps.append(f"{present} of {PAPER_N_FOLDS} folds")
    return gaps


def short_commit(commit: str | None) -> str:
    """``abcdef1`` for a commit, ``abcdef1-dirty-123456`` for uncommitted changes on it,
    ``unrecorded`` when the record names none."""
    if not commit:
        return "unrecorded"
    sha, _, dirty = commit.partition("-dirty-")
    return sha[:7] + (f"-dirty-{dirty[:6]}" if dirty else "")


def _device_type(device: str | None) -> str:
    """``cuda`` or ``cpu`` from a record's device description (``environment.describe_device``)."""
    return "cuda" if device and "(cuda" in device else "cpu"


def pairing_context(rec: dict) -> str:
    """Hash of a run's identity without model, seed and fold: runs of two models that share it were
    run on the same data, device type and settings, so they can be paired seed by seed or fold by fold."""
    config = {key: value for key, value in (rec.get("config") or {}).items() if key not in ("model", "seed")}
    config["protocol"] = {k: v for k, v in (config.get("protocol") or {}).items() if k != "fold"}
    return run_hash(config, (rec.get("data") or {}).get("digest", ""), _device_type(rec.get("device")))


def data_sources(rec: dict) -> tuple[str, tuple[str, ...]]:
    """(``published`` | ``extracted`` | ``mixed`` | ``""``, the extracted bearings) of a record whose dataset
    names each file's source (``dataset_meta.extra.bearing_sources``, the bearings); ``("", ())`` otherwise."""
    sources = (((rec.get("dataset_meta") or {}).get("extra") or {}).get("bearing_sources")) or {}
    kinds = set(sources.values())
    kind = "" if not kinds else "mixed" if len(kinds) > 1 else kinds.pop()
    return kind, tuple(sorted(name for name, source in sources.items() if source == "extracted"))


def records_frame(records: Iterable[dict]) -> pd.DataFrame:
    """One row per record (per named test set) with the columns tables need."""
    rows = []
    for rec in records:
        metric = rec.get("metric")
        sources, extracted = data_sources(rec)
        protocol_cfg = (rec.get("config") or {}).get("protocol") or {}
        row = {
            "dataset": rec.get("dataset"),
            "protocol": rec.get("protocol"),
            "model": rec.get("model"),
            "tag": rec.get("tag", ""),
            "group": rec.get("group_hash", ""),
            "seed": rec.get("seed"),
            "fold": rec.get("fold"),
            "n_folds": protocol_cfg.get("n_folds"),
            "status": rec.get("status"),
            "commit": rec.get("git_commit") or "",
            "data": (rec.get("data") or {}).get("digest") or "",
            "context": pairing_context(rec),
            "config": rec.get("config"),
            "metric": metric,
            "metric_mode": rec.get("metric_mode"),
            "test": (rec.get("test") or {}).get(metric) if metric else None,
            "val": (rec.get("val") or {}).get(metric) if metric else None,
            "parameters": rec.get("parameters_sequence_model"),
            "train_s_per_epoch": rec.get("train_time_per_epoch_s"),
            "latency_ms": 1e3 * rec["latency_per_sample_s"] if rec.get("latency_per_sample_s") is not None else None,
            "peak_memory_mb": rec.get("peak_memory_mb"),
            "memory_method": rec.get("peak_memory_method"),
            "sources": sources,
            "extracted": extracted,
            **{column: (rec.get("test") or {}).get(name) for name, column in SCORE_COLUMNS.items()},
        }
        for evaluation, figures in (rec.get("evaluations") or {}).items():
            for key, value in (figures or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    row[f"{EVAL_PREFIX}{evaluation} {key}"] = value
        named = rec.get("tests") or {}
        if not named:
            rows.append(row)
        for name, metrics in named.items():
            rows.append(
                {
                    **row,
                    "dataset": f"{rec.get('dataset')}/{name}",
                    "test": (metrics or {}).get(metric) if metric else None,
                    **{column: (metrics or {}).get(key) for key, column in SCORE_COLUMNS.items()},
                }
            )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Summary:
    """Mean, sample std (ddof 1) and Student-t interval of the mean of ``n`` values; std and
    interval are None for fewer than two values, everything is None for none."""

    n: int
    mean: float | None
    std: float | None
    low: float | None
    high: float | None


def summarize(values: Iterable[float], confidence: float = CONFIDENCE) -> Summary:
    """:class:`Summary` of the finite-or-not values given (NaN/None dropped)."""
    series = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").astype(float).dropna()
    n = len(series)
    if n == 0:
        return Summary(0, None, None, None, None)
    mean = float(series.mean())
    if n == 1:
        return Summary(1, mean, None, None, None)
    std = float(series.std(ddof=1))
    if std == 0.0:
        return Summary(n, mean, 0.0, mean, mean)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
    return Summary(n, mean, std, float(low), float(high))


def _fmt(summary: Summary, digits: int) -> str | None:
    """``mean ± std``, the mean alone for one value, None for none."""
    if summary.mean is None:
        return None
    if summary.std is None:
        return f"{summary.mean:.{digits}f}"
    return f"{summary.mean:.{digits}f} ± {summary.std:.{digits}f}"


def _fmt_interval(summary: Summary, digits: int, single: str = "single run") -> str | None:
    """``[low, high]``; ``single`` for one value, None for none."""
    if summary.mean is None:
        return None
    if summary.low is None:
        return single
    return f"[{summary.low:.{digits}f}, {summary.high:.{digits}f}]"


def _completeness(group: pd.DataFrame, ok: pd.DataFrame) -> str:
    notes = []
    failed = len(group) - len(ok)
    if failed:
        notes.append(f"{failed} not ok ({', '.join(sorted(set(group.status) - {'ok'}))})")
    if (group.protocol == "paper").all():
        n_folds = group.n_folds.dropna()
        expected = int(n_folds.iloc[0]) if not n_folds.empty else PAPER_N_FOLDS
        seen = ok.fold.dropna().nunique()
        if seen < expected:
            notes.append(f"{seen}/{expected} folds")
    return "incomplete: " + "; ".join(notes) if notes else "complete"


def _digits(metric: str) -> int:
    return 2 if metric in PERCENT_METRICS else 4


def _scale(metric: str) -> float:
    return 100.0 if metric in PERCENT_METRICS else 1.0


def _metric_label(metric: str) -> str:
    return f"{metric} (%)" if metric in PERCENT_METRICS else metric


def _joined(values: pd.Series, short=lambda v: v[:8] if v else "-") -> str:
    """The distinct values of a column, shortened, in order of appearance."""
    return ", ".join(dict.fromkeys(short(v) for v in values))


def _group_metric(group: pd.DataFrame, ok: pd.DataFrame) -> str:
    return ok.metric.dropna().iloc[0] if not ok.metric.dropna().empty else group.metric.iloc[0]


def _column_summary(frame: pd.DataFrame, column: str) -> Summary:
    """:func:`summarize` of a column (empty when the frame has none)."""
    return summarize(pd.to_numeric(frame[column], errors="coerce") if column in frame else [])


def _extracted_of(group: pd.DataFrame) -> list[str]:
    """Every bearing that some run of the group read from extracted features."""
    return sorted({name for names in group.get("extracted", pd.Series(dtype=object)).dropna() for name in names})


def _sources_cell(group: pd.DataFrame) -> str | None:
    """``published``, ``extracted`` or ``mixed (extracted: ...)`` for a group whose records name their sources."""
    kinds = sorted(set(group.get("sources", pd.Series(dtype=object)).dropna()) - {""})
    if not kinds:
        return None
    kind = kinds[0] if len(kinds) == 1 else "mixed"
    extracted = _extracted_of(group)
    return f"{kind} (extracted: {', '.join(extracted)})" if kind == "mixed" and extracted else kind


def _paper_columns(
    dataset: str, protocol: str, model: str, metric: str, group: pd.DataFrame, ok: pd.DataFrame, mean: float | None
) -> dict[str, Any]:
    """``paper (NAC)``, ``diff vs paper`` and ``vs paper`` of one group (all None where the paper has
    no figure for the dataset and metric). Where the paper's figure is of another metric than the
    runs' primary one (:attr:`PaperSetup.figure_metric`, e.g. the bearings' S under selection on MSE),
    that metric's mean is compared."""
    setup = PAPER_SETUPS.get(dataset.split("/")[0])
    figure_metric = metric if setup is None or setup.figure_metric is None else setup.figure_metric
    paper = PAPER_FIGURES.get((dataset, figure_metric))
    if paper is None or setup is None:
        return {"paper (NAC)": None, "diff vs paper": None, "vs paper": None}
    if figure_metric != metric:
        column = SCORE_COLUMNS.get(figure_metric)
        values = ok[column] if column in ok else pd.Series(dtype=float)
        mean = summarize(pd.to_numeric(values, errors="coerce") * _scale(figure_metric)).mean
    config = (ok if not ok.empty else group).config.iloc[0]
    gaps = paper_gaps(
        dataset,
        protocol,
        model,
        config,
        ok.fold.dropna().astype(int),
        extracted=_extracted_of(group),
        selected_on=metric,
    )
    if gaps or mean is None:
        return {"paper (NAC)": None, "diff vs paper": None, "vs paper": "; ".join(gaps) or "no ok runs"}
    return {
        "paper (NAC)": paper,
        "diff vs paper": round(mean - paper, _digits(figure_metric)),
        "vs paper": "like for like",
    }


def summary_table(frame: pd.DataFrame, merge_commits: bool = False) -> pd.DataFrame:
    """One row per group of runs (see the module docstring): mean ± sample std, 95 % t interval,
    runs, status, commit and data digest, and the paper's figure where like for like.

    ``merge_commits``: pool runs of the same settings made with different code (the ``commit``
    column then lists every commit pooled).
    """
    if frame.empty:
        return pd.DataFrame()
    frame = frame.copy()
    for column in ("group", "commit", "data"):
        frame[column] = frame[column].fillna("") if column in frame else ""
    keys = ["dataset", "protocol", "model", "tag", "group"] + ([] if merge_commits else ["commit"])
    variants = frame.groupby(["dataset", "protocol", "model", "tag"], dropna=False)["group"].nunique()
    evaluation_columns = [c for c in frame.columns if c.startswith(EVAL_PREFIX)]
    rows = []
    for key, group in frame.groupby(keys, sort=False, dropna=False):
        dataset, protocol, model, tag, settings = key[:5]
        ok = group[group.status == "ok"]
        metric = _group_metric(group, ok)
        digits = _digits(metric)
        test = summarize(pd.to_numeric(ok.test, errors="coerce") * _scale(metric))
        score = _column_summary(ok, "test_score") if metric != "score" else Summary(0, None, None, None, None)
        per_row = _column_summary(ok, "test_score_per_row")
        rows.append(
            {
                "dataset": dataset,
                "protocol": protocol,
                "model": model,
                "tag": tag,
                "settings": settings if variants.get((dataset, protocol, model, tag), 1) > 1 else "",
                "commit": _joined(group.commit, short_commit),
                "data": _joined(group.data),
                "sources": _sources_cell(group),
                "metric": _metric_label(metric),
                "test": _fmt(test, digits),
                f"test {CONFIDENCE:.0%} CI": _fmt_interval(test, digits),
                "test S": _fmt(score, 4),
                f"test S {CONFIDENCE:.0%} CI": _fmt_interval(score, 4),
                "test S/row": _fmt(per_row, PER_ROW_DIGITS),
                "val": _fmt(summarize(pd.to_numeric(ok.val, errors="coerce") * _scale(metric)), digits),
                "runs": f"{len(ok)}/{len(group)}",
                "status": _completeness(group, ok),
                **_paper_columns(dataset, protocol, model, metric, group, ok, test.mean),
                "params": int(ok.parameters.dropna().iloc[0]) if not ok.parameters.dropna().empty else pd.NA,
                "train s/epoch": _fmt(summarize(ok.train_s_per_epoch), 2),
                "latency ms": _fmt(summarize(ok.latency_ms), 3),
                "peak MB": _fmt(summarize(ok.peak_memory_mb), 0),
                "memory": ", ".join(sorted(set(ok.memory_method.dropna()))),
                **{column[len(EVAL_PREFIX) :]: _fmt(summarize(ok[column]), 2) for column in evaluation_columns},
            }
        )
    table = pd.DataFrame(rows)
    table["params"] = table["params"].astype("Int64")  # whole numbers even where a group has none
    evaluation_names = [column[len(EVAL_PREFIX) :] for column in evaluation_columns]
    for optional in (
        "tag",
        "settings",
        "sources",
        "test S",
        f"test S {CONFIDENCE:.0%} CI",
        "test S/row",
        "paper (NAC)",
        "diff vs paper",
        "vs paper",
        *evaluation_names,
    ):
        if table[optional].isna().all() or table[optional].isin(["", "-"]).all():
            table = table.drop(columns=optional)
    return table


def _pair_key(protocol: str, a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """What pairs runs: the seed (clean), the fold (paper), or fold and seed under the paper
    protocol when a model has several seeds of one fold."""
    if protocol != "paper":
        return ["seed"]
    return ["fold"] if not (a.fold.duplicated().any() or b.fold.duplicated().any()) else ["fold", "seed"]


def _unit(key: list[str], values: tuple) -> str:
    return " ".join(f"{name} {int(value)}" for name, value in zip(key, values))


def _verdict(summary: Summary, model_a: str, model_b: str, mode: str | None) -> str:
    """Which model the interval favours (by the metric's mode), or why none is ranked."""
    if summary.n == 0:
        return "no pairs"
    if summary.low is None:
        return "single pair: no ranking"
    if summary.mean == 0.0 and summary.std == 0.0:
        return "identical in every pair"
    if summary.low <= 0.0 <= summary.high:
        return "not distinguishable"
    a_higher = summary.low > 0.0
    if mode not in ("max", "min"):
        return f"{model_a if a_higher else model_b} higher"
    return f"{model_a if a_higher == (mode == 'max') else model_b} better"


@dataclass(frozen=True)
class Pairing:
    """Two models' per-run values matched on a unit (seed, fold, ...): see :func:`pair_units`."""

    differences: pd.Series  #: a − b per shared unit, sorted by unit
    only_a: list  #: units with a run of ``a`` alone
    only_b: list  #: units with a run of ``b`` alone
    duplicated: list  #: units with several runs on either side (dropped: which would pair is ambiguous)


def pair_units(a: pd.Series, b: pd.Series) -> Pairing:
    """Pair ``a`` and ``b`` (values indexed by their unit: seed, fold, or a tuple of both) unit by unit.

    Units with more than one run on either side are dropped and listed, never guessed; the others
    pair where both sides have them. The single rule behind :func:`paired_comparison` and the
    reports' paired sections."""
    duplicated = set(a.index[a.index.duplicated()]) | set(b.index[b.index.duplicated()])
    a, b = a[~a.index.isin(duplicated)], b[~b.index.isin(duplicated)]
    shared = a.index.intersection(b.index).sort_values()
    return Pairing(
        differences=a[shared] - b[shared],
        only_a=list(a.index.difference(shared)),
        only_b=list(b.index.difference(shared)),
        duplicated=sorted(duplicated),
    )


def paired_comparison(frame: pd.DataFrame, model_a: str, model_b: str, merge_commits: bool = False) -> pd.DataFrame:
    """Model A minus model B, run by run: one row per dataset, protocol, tag, pairing context
    (:func:`pairing_context`: same data, device type and settings other than the model) and commit
    (unless ``merge_commits``) where both models have runs.

    Ok runs with a test value are paired by seed (clean) or fold (paper); the row gives the mean
    difference ± its sample std (table units: percentage points for accuracy), the Student-t
    interval of the mean difference, the number of pairs, the seeds or folds without a partner, and
    a verdict (the better model by the metric's mode when the interval excludes 0).
    """
    columns = [
        "dataset",
        "protocol",
        "tag",
        "commit",
        "data",
        "metric",
        "comparison",
        "difference",
        f"{CONFIDENCE:.0%} CI",
        "pairs",
        "paired by",
        "unpaired",
        "verdict",
    ]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame.assign(commit=frame.commit.fillna(""), data=frame.data.fillna(""))
    keys = ["dataset", "protocol", "tag", "context"] + ([] if merge_commits else ["commit"])
    rows = []
    for key, group in frame.groupby(keys, sort=False, dropna=False):
        dataset, protocol, tag = key[:3]
        usable = group[(group.status == "ok") & group.test.notna()]
        a, b = usable[usable.model == model_a], usable[usable.model == model_b]
        if not ((group.model == model_a).any() and (group.model == model_b).any()):
            continue
        metric = _group_metric(group, usable)
        pair_on = _pair_key(protocol, a, b)
        pairing = pair_units(*(side.set_index(pair_on).test.astype(float) for side in (a, b)))
        diff = summarize(pairing.differences * _scale(metric))
        as_tuple = lambda index: index if isinstance(index, tuple) else (index,)  # noqa: E731
        unpaired = (
            [f"{_unit(pair_on, as_tuple(i))} ({model_a} only)" for i in pairing.only_a]
            + [f"{_unit(pair_on, as_tuple(i))} ({model_b} only)" for i in pairing.only_b]
            + [f"{_unit(pair_on, as_tuple(i))} (several runs)" for i in pairing.duplicated]
        )
        modes = group.metric_mode.dropna()
        rows.append(
            {
                "dataset": dataset,
                "protocol": protocol,
                "tag": tag,
                "commit": _joined(group.commit, short_commit),
                "data": _joined(group.data),
                "metric": _metric_label(metric),
                "comparison": f"{model_a} − {model_b}",
                "difference": _fmt(diff, _digits(metric)),
                f"{CONFIDENCE:.0%} CI": _fmt_interval(diff, _digits(metric), single="single pair"),
                "pairs": diff.n,
                "paired by": " and ".join(pair_on),
                "unpaired": ", ".join(unpaired),
                "verdict": _verdict(diff, model_a, model_b, modes.iloc[0] if not modes.empty else None),
            }
        )
    table = pd.DataFrame(rows, columns=columns)
    return table.drop(columns="tag") if table.tag.isin(["", None]).all() else table


#: what the figures of :func:`summary_table` and :func:`paired_comparison` are, printed under them
LEGEND = (
    f"Figures: mean ± sample std (ddof 1) over ok runs; CI: Student-t {CONFIDENCE:.0%} interval of the "
    "mean (single run: n = 1, no std or interval); runs: ok/total; commit and data: the code and data "
    "digest of the runs; paper (NAC) and diff only where like for like, else vs paper says why."
)
#: the same for :func:`paired_comparison`
PAIRED_LEGEND = (
    f"Paired: model A − model B on the same seed (clean) or fold (paper), same data and settings; "
    f"difference: mean ± sample std of the per-pair differences; CI: Student-t {CONFIDENCE:.0%} "
    "interval of the mean difference; a verdict names a better model only when it excludes 0."
)


def to_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown, every cell printed exactly as formatted (no re-parsing of numbers,
    which would drop trailing zeros); missing values (a group without ok runs) and empty cells show as
    ``-``."""
    if table.empty:
        return "(no records)"
    cells = table.astype(object).where(table.notna() & (table != ""), "-").map(str)
    return cells.to_markdown(index=False, disable_numparse=True)
