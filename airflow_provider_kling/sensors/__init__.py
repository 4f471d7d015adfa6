"""Sensors: the wait for a Kling request by its id."""
