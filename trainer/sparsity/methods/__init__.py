"""Importing this package registers every method: each module here (one per family) is imported, so a new
method is one file in this folder (``@register("name")`` on its class, and its ``SIM_RULE`` for the simulator)."""
import importlib
import pkgutil

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
