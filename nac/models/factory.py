"""The one model factory: a ``configs/model/`` node -> sequence model, and a run's config -> stem,
sequence model and head (:class:`SequencePredictor`). The runner, the efficiency benchmark
(nac/harness/efficiency.py) and the contract tests all build models here."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from nac.models.predictor import SequencePredictor


def _without(node: DictConfig, *keys: str) -> DictConfig:
    cfg = OmegaConf.to_container(node, resolve=True)
    for key in keys:
        cfg.pop(key, None)
    return OmegaConf.create(cfg)


def make_sequence_model(model_cfg: DictConfig, input_dim: int, **overrides) -> nn.Module:
    """Instantiate a ``configs/model/`` node (a ``_partial_`` target) for inputs of width ``input_dim``;
    ``overrides`` (e.g. ``return_sequences=True``) go to the constructor."""
    model = instantiate(_without(model_cfg, "name"))(input_dim=input_dim, **overrides)
    if not hasattr(model, "output_dim"):
        raise TypeError(f"model {model_cfg.get('name')!r} does not expose output_dim (see nac/contract.py)")
    return model


def build_predictor(cfg: DictConfig, input_dim: int, output_dim: int, per_step: bool = False) -> SequencePredictor:
    """Stem (from the dataset) -> sequence model (``model=``) -> head (from the dataset).

    With per-step labels the sequence model returns every step (``return_sequences=True``).
    """
    stem = instantiate(cfg.dataset.stem)(in_features=input_dim)
    sequence_model = make_sequence_model(cfg.model, stem.output_dim, **({"return_sequences": True} if per_step else {}))
    head = instantiate(cfg.dataset.head)(in_features=sequence_model.output_dim, out_features=output_dim)
    return SequencePredictor(stem, sequence_model, head)
