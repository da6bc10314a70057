"""A run's identity: everything that can change its numbers, and nothing that cannot.

The identity is the resolved config without the keys in :data:`VOLATILE`, plus the fingerprint of
the data the builder read (``data``: the digest of ``nac.data.sources.fingerprint``) and the kind of
device it runs on (``device_type``: cpu or cuda). Its hash names the run's record, so a run on
other or changed data, or on another kind of device, never reuses a finished record. ``threads``
and ``trainer.num_workers`` stay in: torch's thread count changes floating-point sums, and the
worker count changes the random augmentation of datasets that draw per worker (Udacity).

The group identity is the same with seed and fold neutralised: tables average runs that share it.
See docs/RECORDS.md, section 3 (and nac/harness/resume.py for when a finished run is skipped).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from omegaconf import DictConfig, OmegaConf

from nac.harness.records import config_hash

#: config keys (dotted for nested ones) that cannot change a run's numbers
VOLATILE = (
    "paths",
    "device",
    "hydra",
    "force",
    "logger",
    "trainer.progress",
    "trainer.save_predictions",
    "trainer.checkpoint",
)


def _without(config: dict, dotted: Iterable[str]) -> dict:
    config = copy.deepcopy(config)
    for key in dotted:
        *parents, leaf = key.split(".")
        node = config
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return config


def run_identity(resolved: dict, data_digest: str, device_type: str) -> dict:
    """The resolved config minus :data:`VOLATILE`, with the data digest and the device type."""
    return {**_without(resolved, VOLATILE), "data": data_digest, "device_type": device_type}


def run_hash(resolved: dict, data_digest: str, device_type: str) -> str:
    """Short hash of :func:`run_identity`: the last part of the record's file name."""
    return config_hash(run_identity(resolved, data_digest, device_type))


def group_hash(cfg: DictConfig, data_digest: str, device_type: str) -> str:
    """Hash of the identity with seed and fold neutralised (values derived from them included):
    runs that differ only in seed or fold share it, so tables average exactly those."""
    neutral = OmegaConf.to_container(cfg, resolve=False)
    neutral["seed"] = 0
    neutral.get("protocol", {}).pop("fold", None)
    resolved = OmegaConf.to_container(OmegaConf.create(neutral), resolve=True)
    return run_hash(resolved, data_digest, device_type)
