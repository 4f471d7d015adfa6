"""Hooks: the API calls to GMI (``kling.py``) and the connection form (``forms.py``)."""
