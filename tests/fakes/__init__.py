"""Fakes for tests: scripted servers and in-memory seams."""
