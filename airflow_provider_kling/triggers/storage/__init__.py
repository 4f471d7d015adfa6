"""The documented path of the drop-folder trigger (and its serialized classpath); the folder holds its parts.

``new_images.py`` the trigger; ``cursor.py`` what is new and the persisted cursor;
``listing.py`` one listing of a folder; ``local_folder.py`` a local folder read without following
a link.
"""

from __future__ import annotations

from airflow_provider_kling.triggers.storage.local_folder import FolderImage
from airflow_provider_kling.triggers.storage.new_images import (
    DEFAULT_PATTERNS,
    NewImagesTrigger,
    announced_image,
)

__all__ = ["DEFAULT_PATTERNS", "FolderImage", "NewImagesTrigger", "announced_image"]
