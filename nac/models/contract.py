"""The sequence-model contract, re-exported from :mod:`nac.contract` (where it lives, below both
the layers and the models) for code and documents that cite ``nac/models/contract.py``."""

from nac.contract import SequenceModel, last_valid_step

__all__ = ["SequenceModel", "last_valid_step"]
