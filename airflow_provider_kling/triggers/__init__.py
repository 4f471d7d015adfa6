"""Triggers: the wait for a request in the triggerer (``kling.py``) and the drop folder (``storage/``)."""
