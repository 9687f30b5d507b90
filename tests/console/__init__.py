"""Tests of beam_jobs/console/, one module per module."""
