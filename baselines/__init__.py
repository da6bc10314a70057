"""Baseline sequence models, one per file, each following nac/models/contract.py."""
