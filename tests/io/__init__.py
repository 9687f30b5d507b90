"""Tests of beam_jobs/io/, one module per module."""
