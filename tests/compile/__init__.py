"""Tests of beam_jobs/compile/, one module per module."""
