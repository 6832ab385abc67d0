"""Validation of a batch: the checks (GX suites run row by row, quarantine, accounting) and their partitioned form for large batches."""
