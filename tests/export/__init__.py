"""Tests of beam_jobs/export/, one module per module."""
