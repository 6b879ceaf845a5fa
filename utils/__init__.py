"""Shared helpers: errors users can cause, atomic file writes, logging and progress."""
