"""Estimators and their scoring networks: the contract, the triplet model, baselines, fold-in."""
