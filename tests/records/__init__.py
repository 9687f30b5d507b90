"""Tests of beam_jobs/records/, one module per module."""
