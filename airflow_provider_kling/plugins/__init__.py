"""The "Kling videos" view in the Airflow UI: an Airflow plugin the provider registers itself.

:mod:`.kling` is the plugin, :mod:`.app` its FastAPI app (api-server only), :mod:`.queries`
what the app reads from the metadata database.
"""
