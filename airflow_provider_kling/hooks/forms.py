"""
The ``kling`` connection form in the shape Airflow 3.1 asks the hook for.

Airflow 3.2+ reads the form from :func:`~airflow_provider_kling.get_provider_info.get_provider_info`
without importing the hook; both are built from the constants defined there, so they agree.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_kling.get_provider_info import CONN_FIELDS, HIDDEN_FIELDS, PLACEHOLDERS, RELABELING


def ui_field_behaviour() -> dict[str, Any]:
    """Which standard fields the form hides, relabels and fills with placeholders."""
    return {"hidden_fields": HIDDEN_FIELDS, "relabeling": RELABELING, "placeholders": PLACEHOLDERS}


def connection_form_widgets() -> dict[str, Any]:
    """The extra fields (organization id, timeout) as WTForms fields."""
    # The webserver's form libraries: imported only when the form is drawn.
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import StringField
    from wtforms.validators import Optional

    return {
        name: StringField(lazy_gettext(spec["label"]), widget=BS3TextFieldWidget(), validators=[Optional()])
        for name, spec in CONN_FIELDS.items()
    }
