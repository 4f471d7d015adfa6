"""The provider metadata, as Airflow itself reads and checks it."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import sys
import types
import warnings
from importlib.resources import files

import jsonschema
import pytest

from airflow_provider_kling import __version__
from airflow_provider_kling.get_provider_info import get_provider_info
from airflow_provider_kling.hooks.kling import KlingHook

HOOK_CLASS = "airflow_provider_kling.hooks.kling.KlingHook"
EXTRA_FIELDS = ("organization_id", "timeout")


@pytest.fixture(scope="module")
def info():
    return get_provider_info()


# Checked once, before any test puts stand-ins in sys.modules.
FAB_INSTALLED = all(importlib.util.find_spec(m) for m in ("wtforms", "flask_babel", "flask_appbuilder"))


def fake_fab_modules() -> dict[str, types.ModuleType]:
    """
    Stand-ins for wtforms, flask_babel and flask_appbuilder, like the mocks Airflow's own API
    server swaps in to read hooks' legacy form methods; only used when the real ones are missing.
    """

    class Field:
        widget = None

        def __init__(self, *args, **kwargs) -> None:
            self.args, self.kwargs = args, kwargs
            self.field_class = type(self)

    modules = {name: types.ModuleType(name) for name in ("wtforms", "wtforms.validators", "flask_babel")}
    modules.update({n: types.ModuleType(n) for n in ("flask_appbuilder", "flask_appbuilder.fieldwidgets")})
    for name in ("StringField", "IntegerField", "PasswordField", "BooleanField"):
        setattr(modules["wtforms"], name, type(name, (Field,), {}))
    modules["wtforms"].validators = modules["wtforms.validators"]
    modules["wtforms.validators"].Optional = type("Optional", (), {})
    modules["flask_babel"].lazy_gettext = str
    modules["flask_appbuilder"].fieldwidgets = modules["flask_appbuilder.fieldwidgets"]
    modules["flask_appbuilder.fieldwidgets"].BS3TextFieldWidget = type("BS3TextFieldWidget", (), {})
    return modules


@pytest.fixture(scope="module")
def providers_manager():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    if hasattr(manager, "_load_ui_metadata") or FAB_INSTALLED:
        # Airflow 3.2+ builds connection forms from the provider info, without wtforms.
        yield manager
        return
    # Airflow 3.1 builds them from the hook's legacy methods, and only when wtforms imports
    # (as in its API server, which swaps in mocks): read them again with stand-ins in place.
    with pytest.MonkeyPatch.context() as patch:
        for name, module in fake_fab_modules().items():
            patch.setitem(sys.modules, name, module)
        manager._cleanup()
        manager._init_airflow_core_hooks()
        yield manager
    manager._cleanup()
    manager._init_airflow_core_hooks()


@pytest.fixture(scope="module")
def kling_connection_type(info):
    (conn_type,) = info["connection-types"]
    return conn_type


def test_the_provider_info_matches_airflows_own_schema(info):
    schema = json.loads(files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)
    assert info["package-name"] == "airflow-provider-kling"
    assert info["versions"] == [__version__]


def test_the_schema_check_can_fail(info):
    schema = json.loads(files("airflow").joinpath("provider_info.schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**info, "connection-types": [{"hook-class-name": HOOK_CLASS}]}, schema)


def test_every_module_named_in_the_provider_info_imports(info):
    modules = [
        module
        for section in ("hooks", "operators", "sensors", "triggers")
        for entry in info[section]
        for module in entry["python-modules"]
    ]
    assert len(modules) == 7  # three operator modules (kling, submit, download), two trigger modules
    for module in modules:
        importlib.import_module(module)


def test_every_class_named_in_the_provider_info_imports(info):
    classes = [*info["extra-links"], *(c["hook-class-name"] for c in info["connection-types"])]
    for path in classes:
        module, _, name = path.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module), name), type), path


def test_every_integration_name_used_is_declared(info):
    declared = {i["integration-name"] for i in info["integrations"]}
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            assert entry["integration-name"] in declared


def test_the_entry_point_is_installed_and_points_to_get_provider_info():
    entry_points = [
        ep
        for ep in importlib.metadata.entry_points(group="apache_airflow_provider")
        if ep.dist is not None and ep.dist.metadata["Name"] == "airflow-provider-kling"
    ]
    assert [ep.value for ep in entry_points] == ["airflow_provider_kling.get_provider_info:get_provider_info"]
    assert entry_points[0].load() is get_provider_info
    assert entry_points[0].dist.version == __version__


def test_the_connection_type_names_our_hook(kling_connection_type):
    assert kling_connection_type["connection-type"] == KlingHook.conn_type == "kling"
    assert kling_connection_type["hook-class-name"] == HOOK_CLASS
    assert kling_connection_type["hook-name"] == KlingHook.hook_name


def test_airflow_finds_the_provider(providers_manager):
    provider = providers_manager.providers["airflow-provider-kling"]
    assert provider.version == __version__
    assert provider.data["connection-types"][0]["hook-class-name"] == HOOK_CLASS


def test_airflow_maps_the_kling_connection_type_to_our_hook(providers_manager):
    with warnings.catch_warnings():
        # Airflow 3.2+ moved ``hooks`` to ProvidersManagerTaskRuntime and warns here.
        warnings.simplefilter("ignore")
        hook_info = providers_manager.hooks["kling"]
    assert hook_info is not None
    assert hook_info.hook_class_name == HOOK_CLASS
    assert hook_info.hook_name == "Kling (GMI Cloud)"
    assert hook_info.connection_type == "kling"
    assert hook_info.connection_id_attribute_name == "kling_conn_id"
    assert hook_info.package_name == "airflow-provider-kling"
    assert hook_info.connection_testable is True


def test_the_task_runtime_maps_the_kling_connection_type_to_our_hook():
    runtime = pytest.importorskip("airflow.sdk.providers_manager_runtime", reason="Airflow < 3.2")
    hook_info = runtime.ProvidersManagerTaskRuntime().hooks["kling"]
    assert hook_info is not None
    assert hook_info.hook_class_name == HOOK_CLASS
    assert hook_info.hook_name == "Kling (GMI Cloud)"


def test_the_connection_form_has_our_extra_fields(providers_manager):
    widgets = providers_manager.connection_form_widgets
    for name in EXTRA_FIELDS:
        widget = widgets[f"extra__kling__{name}"]
        assert widget.hook_class_name in (HOOK_CLASS, "KlingHook")  # Airflow 3.1 keeps the short name
        assert widget.package_name == "airflow-provider-kling"
        assert widget.field_name == name
        assert widget.is_sensitive is False


def test_the_connection_form_hides_and_relabels_fields(providers_manager):
    behaviour = providers_manager.field_behaviours["kling"]
    # Port shows: on Airflow 3.3.2 the Test button works only for a connection that stores one.
    assert set(behaviour["hidden_fields"]) == {"schema", "login", "extra"}
    assert behaviour["relabeling"] == {
        "host": "Base URL",
        "password": "API key",
        "port": "Port (optional; 443 lets the Test button work)",
    }
    placeholders = behaviour["placeholders"]
    assert placeholders["host"] == "https://console.gmicloud.ai"
    assert placeholders["password"] == "GMI Cloud API key"
    # Not a bare "443", which reads as a value already saved.
    assert placeholders["port"] == "empty, or e.g. 443"
    for name in EXTRA_FIELDS:
        assert f"extra__kling__{name}" in placeholders


def test_the_connection_ui_metadata_lists_kling(providers_manager):
    if not hasattr(providers_manager, "iter_connection_type_hook_ui_metadata"):
        pytest.skip("Airflow < 3.2 has no UI metadata from provider info")
    (meta,) = [
        m for m in providers_manager.iter_connection_type_hook_ui_metadata() if m.connection_type == "kling"
    ]
    assert meta.hook_name == "Kling (GMI Cloud)"
    assert meta.hook_class_name == HOOK_CLASS
    assert meta.field_behaviour["relabeling"]["password"] == "API key"


def test_the_hooks_field_behaviour_agrees_with_the_provider_info(kling_connection_type):
    from_info = kling_connection_type["ui-field-behaviour"]
    from_hook = KlingHook.get_ui_field_behaviour()
    assert from_hook == {
        "hidden_fields": from_info["hidden-fields"],
        "relabeling": from_info["relabeling"],
        "placeholders": from_info["placeholders"],
    }


def test_the_hooks_form_widgets_agree_with_the_provider_info(kling_connection_type, monkeypatch):
    if not FAB_INSTALLED:
        for name, module in fake_fab_modules().items():
            monkeypatch.setitem(sys.modules, name, module)
    widgets = KlingHook.get_connection_form_widgets()
    assert list(widgets) == list(kling_connection_type["conn-fields"])
    for name, spec in kling_connection_type["conn-fields"].items():
        assert str(widgets[name].args[0]) == spec["label"]


def test_the_legacy_form_methods_are_on_the_registered_hook_class_itself():
    """Airflow 3.1 reads them only from the hook class's own ``__dict__``, not from a base class."""
    assert "get_ui_field_behaviour" in KlingHook.__dict__
    assert "get_connection_form_widgets" in KlingHook.__dict__


def test_placeholders_exist_for_every_extra_field(kling_connection_type):
    placeholders = kling_connection_type["ui-field-behaviour"]["placeholders"]
    assert set(kling_connection_type["conn-fields"]) <= set(placeholders)
