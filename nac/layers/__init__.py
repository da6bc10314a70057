"""The NAC layer family."""

from nac.layers.nac import Attention, NeuronalAttentionCircuit, ode_logits

__all__ = ["Attention", "NeuronalAttentionCircuit", "ode_logits"]
