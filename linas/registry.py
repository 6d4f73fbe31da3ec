"""Name -> factory registries with plug-in discovery.

Adding a strategy, space, evaluator or predictor means adding one module that
registers itself; nothing else is edited. Modules are discovered in the
registry's packages the first time a name is not found, and third-party
packages can register through the ``linas.<kind>`` entry-point group.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Generic, TypeVar

from linas.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of factories of one kind.

    Example::

        strategies = Registry("strategy", packages=["linas.strategies"])

        @strategies.register("random")
        class RandomSearch: ...

        strategies.get("random")  # -> RandomSearch
    """

    def __init__(self, kind: str, packages: Iterable[str] = ()) -> None:
        self.kind = kind
        self._packages = list(packages)
        self._items: dict[str, T] = {}
        self._walked: set[str] = set()
        self._entry_points_loaded = False
        self._import_failures: dict[str, str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            existing = self._items.get(name)
            if existing is not None and existing is not obj:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        if name not in self._items:
            self.discover(until=name)
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "none"
            hint = ""
            if self._import_failures:
                failed = "; ".join(f"{m}: {e}" for m, e in sorted(self._import_failures.items()))
                hint = f" (modules that could not be imported: {failed})"
            raise ConfigError(f"unknown {self.kind} '{name}'; known: {known}{hint}")
        return self._items[name]

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._items)

    def discover(self, until: str | None = None) -> None:
        """Import the modules of the registry's packages, then its entry points.

        With ``until``, stop after the first package that registers that name, so
        looking up a light component never imports the heavy ones (torch supernets).
        """
        for package_name in self._packages:
            if until is not None and until in self._items:
                return
            if package_name in self._walked:
                continue
            self._walked.add(package_name)
            try:
                package = importlib.import_module(package_name)
            except ImportError as exc:
                self._import_failures[package_name] = str(exc)
                continue
            for info in pkgutil.walk_packages(package.__path__, prefix=package_name + "."):
                if info.name.rsplit(".", 1)[-1].startswith("_"):
                    continue
                try:
                    importlib.import_module(info.name)
                except ImportError as exc:
                    self._import_failures[info.name] = str(exc)
        if self._entry_points_loaded or (until is not None and until in self._items):
            return
        self._entry_points_loaded = True
        for entry in metadata.entry_points(group=f"linas.{self.kind}"):
            if entry.name not in self._items:
                try:
                    self._items[entry.name] = entry.load()
                except ImportError as exc:
                    self._import_failures[entry.value] = str(exc)
