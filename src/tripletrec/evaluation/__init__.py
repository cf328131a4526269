"""Ranking metrics, top-k, and the evaluation protocols."""
