"""Tests of beam_jobs/cli/, one module per module."""
