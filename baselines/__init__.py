"""Baseline sequence models, one per file, each following nac/contract.py."""
