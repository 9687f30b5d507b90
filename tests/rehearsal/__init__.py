"""Tests of beam_jobs/rehearsal/, one module per module."""
