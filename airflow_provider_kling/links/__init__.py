"""Extra links: the Kling request and video buttons on a task in the Airflow UI."""
