"""Evaluation protocols beyond the time and user splits of tasks/data/splits.py."""
