"""Interaction data: id maps, readers, side features, splits, bundled and synthetic data sets."""
