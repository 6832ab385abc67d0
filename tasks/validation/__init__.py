"""Validation: the checks of an input batch (GX suites run row by row, quarantine,
accounting), their partitioned form for large batches, and the output suite on a scored
table."""
