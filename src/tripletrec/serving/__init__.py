"""Serving fitted models: exact and approximate retrieval, the HTTP service."""
