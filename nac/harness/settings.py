"""Checks of the run settings (``seed``, ``threads``, ``trainer.*``) before anything is built or trained.

Each bad value stops the run with one :class:`SetupError` that names the key, the value and what
is allowed; no record is written (nothing ran).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from nac.harness.errors import SetupError


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _bad(key: str, value: Any, allowed: str) -> SetupError:
    return SetupError(f"{key}={value!r} is not valid; {allowed}")


def _integer(node: Mapping, prefix: str, key: str, minimum: int, optional: bool = False) -> None:
    value = node.get(key)
    if value is None and optional:
        return
    if not _is_int(value) or value < minimum:
        raise _bad(f"{prefix}{key}", value, f"use an integer >= {minimum}" + (" or null" if optional else ""))


def _positive(node: Mapping, prefix: str, key: str, optional: bool = False, zero: bool = False) -> None:
    value = node.get(key)
    if value is None and optional:
        return
    if not _is_number(value) or value < 0 or (value == 0 and not zero):
        allowed = "a number >= 0" if zero else "a number > 0"
        raise _bad(f"{prefix}{key}", value, f"use {allowed}" + (" or null" if optional else ""))


def _boolean(node: Mapping, prefix: str, key: str) -> None:
    if not isinstance(node.get(key), bool):
        raise _bad(f"{prefix}{key}", node.get(key), "use true or false")


def validate_settings(cfg: Mapping) -> None:
    """Raise :class:`SetupError` for the first bad value among ``seed``, ``threads`` and ``trainer.*``."""
    _integer(cfg, "", "seed", minimum=0)
    _integer(cfg, "", "threads", minimum=1, optional=True)
    trainer = cfg.get("trainer") or {}
    prefix = "trainer."
    _integer(trainer, prefix, "epochs", minimum=1)
    _integer(trainer, prefix, "batch_size", minimum=1)
    _integer(trainer, prefix, "eval_batch_size", minimum=1)
    _integer(trainer, prefix, "early_stopping_patience", minimum=0, optional=True)
    _integer(trainer, prefix, "limit_train_batches", minimum=1, optional=True)
    _integer(trainer, prefix, "latency_samples", minimum=0)
    _integer(trainer, prefix, "num_workers", minimum=0)
    _positive(trainer, prefix, "grad_clip", optional=True)
    _boolean(trainer, prefix, "deterministic")
    _boolean(trainer, prefix, "progress")
    optimizer = trainer.get("optimizer")
    if not isinstance(optimizer, Mapping) or not optimizer.get("_target_"):
        raise _bad(f"{prefix}optimizer", optimizer, "give a node with _target_ (e.g. torch.optim.AdamW) and lr")
    if "lr" in optimizer:
        _positive(optimizer, f"{prefix}optimizer.", "lr")
    if "weight_decay" in optimizer:
        _positive(optimizer, f"{prefix}optimizer.", "weight_decay", zero=True)
    scheduler = trainer.get("scheduler")
    if scheduler is not None and (not isinstance(scheduler, Mapping) or not scheduler.get("_target_")):
        raise _bad(f"{prefix}scheduler", scheduler, "give null or a node with _target_")
