from __future__ import annotations

import io

import pytest


@pytest.fixture(scope="session")
def png_bytes() -> bytes:
    """A real 320x320 PNG: large enough for GMI's published 300 px minimum."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (320, 320), (200, 120, 40)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(autouse=True)
def _no_settle(no_settle: None) -> None:
    """Unit tests never pause before listing GMI's requests again (see ``no_settle``)."""


@pytest.fixture(scope="session")
def _empty_metadata_db(tmp_path_factory: pytest.TempPathFactory):
    """Airflow's whole schema in a SQLite file, created once (it takes seconds)."""
    from sqlalchemy import create_engine

    from devtools.seed import create_metadata_tables

    path = tmp_path_factory.mktemp("metadata") / "airflow.db"
    engine = create_engine(f"sqlite:///{path}")
    create_metadata_tables(engine)
    engine.dispose()
    return path


@pytest.fixture
def metadata_engine(_empty_metadata_db, tmp_path):
    """A fresh, empty copy of Airflow's metadata database for one test."""
    import shutil

    from sqlalchemy import create_engine

    path = tmp_path / "airflow.db"
    shutil.copyfile(_empty_metadata_db, path)
    engine = create_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()
