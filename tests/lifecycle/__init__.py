"""Tests of beam_jobs/lifecycle/, one module per module."""
