"""Measuring a detector: metrics, robustness variants, plots and the report folder."""
