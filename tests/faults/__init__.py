"""Reliability and security tests: the fault matrix, crash safety, concurrency and hostile input.

`python -m tests.faults.report` runs the same cases as `pytest tests/faults` and prints the matrix.
"""
