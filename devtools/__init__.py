"""This repository's own development tools, kept out of the wheel users install.

``deployment`` starts and stops a real Airflow deployment (``make airflow-up``, the end-to-end
tests, ``bench/deployment.py``) on a ``topology``, whose process groups ``processes`` manages
and ``signals`` and ``watchdog`` stop when the process that started them ends;
``seed`` fills a metadata database with Kling task records (the view's tests and benchmark).
Run from the repository's root, e.g. ``python -m devtools.deployment up``.
"""
