"""The one model factory: a ``configs/model/`` node -> sequence model, and a run's config -> stem,
sequence model and head (:class:`SequencePredictor`). The runner, the efficiency benchmark
(nac/harness/efficiency.py) and the contract tests all build models here. A model's name is its
config file's stem (the ``model=`` choice): :func:`model_name`."""

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


def model_name(cfg: DictConfig) -> str:
    """The run's model name: ``model.name`` when the config sets one (a user's own config), else Hydra's
    ``model=`` choice (the file stem under ``configs/model/``): from the config's own ``hydra`` node
    (composed with ``return_hydra_config=True``), else from the running Hydra app (the CLI)."""
    model = cfg.get("model")
    if model is not None and model.get("name"):
        return str(model.name)
    choice = OmegaConf.select(cfg, "hydra.runtime.choices.model", default=None)
    if choice is None:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            choice = HydraConfig.get().runtime.choices.get("model")
    if not choice:
        raise ValueError(
            "cannot tell the model's name: the config has no model.name and no Hydra model choice; compose it "
            "with compose(..., return_hydra_config=True) or set model.name=<the file stem under configs/model/>"
        )
    return str(choice)


def make_sequence_model(model_cfg: DictConfig, input_dim: int, **overrides) -> nn.Module:
    """Instantiate a ``configs/model/`` node (a ``_partial_`` target) for inputs of width ``input_dim``;
    ``overrides`` (e.g. ``return_sequences=True``) go to the constructor."""
    model = instantiate(_without(model_cfg, "name"))(input_dim=input_dim, **overrides)
    if not hasattr(model, "output_dim"):
        which = model_cfg.get("name") or model_cfg.get("_target_")
        raise TypeError(f"model {which!r} does not expose output_dim (see nac/contract.py)")
    return model


def build_predictor(cfg: DictConfig, input_dim: int, output_dim: int, per_step: bool = False) -> SequencePredictor:
    """Stem (from the dataset) -> sequence model (``model=``) -> head (from the dataset).

    With per-step labels the sequence model returns every step (``return_sequences=True``).
    """
    stem = instantiate(cfg.dataset.stem)(in_features=input_dim)
    sequence_model = make_sequence_model(cfg.model, stem.output_dim, **({"return_sequences": True} if per_step else {}))
    head = instantiate(cfg.dataset.head)(in_features=sequence_model.output_dim, out_features=output_dim)
    return SequencePredictor(stem, sequence_model, head)
