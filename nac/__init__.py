"""nac-bench: the Neuronal Attention Circuit and a benchmark harness for continuous-time sequence models."""

__version__ = "0.1.0"
