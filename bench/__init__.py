"""Benchmarks of beam-jobs against hand-written pipelines: `make bench`."""
