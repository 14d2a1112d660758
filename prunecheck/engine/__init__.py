"""Predictions of models on dataset views, batched and cached on disk."""
