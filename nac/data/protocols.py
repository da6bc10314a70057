"""The evaluation protocol a builder follows, parsed once from the ``protocol`` config mapping.

``configs/protocol/{clean,paper}.yaml`` hold the same defaults as :data:`DEFAULTS` (a test checks
they agree); a builder calls :meth:`Protocol.parse` and reads typed fields instead of
``protocol.get(key, default)``. What each protocol means per dataset is in docs/PROTOCOLS.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: per protocol name, the value of every field the mapping leaves out (as configs/protocol/*.yaml)
DEFAULTS: dict[str, dict] = {
    "clean": {"n_folds": 5, "fold": 0, "split_seed": 0, "val_fraction": 0.2, "test_fraction": 0.2},
    "paper": {"n_folds": 5, "fold": 0, "split_seed": 42, "val_fraction": 0.2, "test_fraction": 0.2},
}


def unknown_protocol(dataset: str, name, supported) -> ValueError:
    """The one error for a protocol name a dataset does not support."""
    return ValueError(f"dataset {dataset!r} has no protocol {name!r}; choose protocol= one of {list(supported)}")


@dataclass(frozen=True)
class Protocol:
    """``clean`` (held-out test, validation carved from training data) or ``paper`` (the NAC authors'
    shuffled k-fold, the held-out fold both validation and test); ``split_seed`` fixes the split."""

    name: str
    n_folds: int = 5
    fold: int = 0
    split_seed: int = 0
    val_fraction: float = 0.2
    test_fraction: float = 0.2

    @property
    def is_paper(self) -> bool:
        return self.name == "paper"

    @property
    def record_fold(self) -> int | None:
        """The fold a record names (``DatasetMeta.fold``): ``fold`` under ``paper``, None otherwise."""
        return self.fold if self.is_paper else None

    @classmethod
    def parse(cls, dataset: str, protocol: Mapping, supported: tuple[str, ...] = ("clean", "paper")) -> Protocol:
        """The protocol of ``protocol`` (a mapping with ``name``), defaults filled in; a ValueError naming
        the dataset's protocols when the name is not one of ``supported``, or when a value is out of range."""
        name = protocol.get("name")
        if name not in supported or name not in DEFAULTS:
            raise unknown_protocol(dataset, name, supported)
        values = {key: protocol.get(key, default) for key, default in DEFAULTS[name].items()}
        parsed = cls(
            name=str(name),
            n_folds=int(values["n_folds"]),
            fold=int(values["fold"]),
            split_seed=int(values["split_seed"]),
            val_fraction=float(values["val_fraction"]),
            test_fraction=float(values["test_fraction"]),
        )
        if parsed.is_paper and not 0 <= parsed.fold < parsed.n_folds:
            raise ValueError(f"protocol.fold={parsed.fold} must be in [0, {parsed.n_folds - 1}]")
        return parsed
