"""Name -> factory registries with plug-in discovery and typed options.

Adding a strategy, space, evaluator or predictor means adding one module that
registers itself; nothing else is edited. Modules are discovered in the
registry's packages the first time a name is not found, and third-party
packages can register through the ``linas.<kind>`` entry-point group (or be named
under ``plugins:`` in an experiment config).

A component declares its options as a pydantic model, a nested class ``Options``
(or a class attribute ``options_model``; ``register(name, options=Model)`` for a
function). :meth:`Registry.build` validates the options a config gives against it
and reports the first problem as one line naming the component kind, its name and
the option::

    strategy 'linas': option 'populaton' is not known; known: inner_evaluations, ...
    evaluator 'synthetic_mbv3': noise: Input should be a valid number
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from linas.config_io import error_message
from linas.errors import ConfigError

T = TypeVar("T")


class Options(BaseModel):
    """Base of a component's options: unknown keys are errors, values are checked by type.

    Fields are the options, with their types, defaults and constraints (``Field(ge=0)``);
    :meth:`Registry.build` passes every field to the factory as a keyword argument.
    Subclass the options of a parent component to add to them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


def options_model(factory: Any) -> type[BaseModel] | None:
    """The pydantic model of a factory's options (``Options`` or ``options_model``), or None."""
    model = getattr(factory, "Options", None) or getattr(factory, "options_model", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


class Registry(Generic[T]):
    """A named collection of factories of one kind.

    Example::

        strategies = Registry("strategy", packages=["linas.strategies"])

        @strategies.register("random")
        class RandomSearch: ...

        strategies.get("random")  # -> RandomSearch

    Components are built from a config's name and options with :meth:`build`: the
    positional arguments are the ones the kind always passes (a strategy's space,
    number of objectives and seed), the keywords are the user's options::

        class Linas(Strategy):
            class Options(linas.registry.Options):
                population: int = Field(50, ge=2)
                predictor: str = "auto"

            def __init__(self, space, n_objectives, seed, population=50, predictor="auto"): ...

        strategies.build("linas", space, 2, seed, **{"population": 20})
        # -> Linas(space, 2, seed, population=20, predictor="auto")
        strategies.build("linas", space, 2, seed, populaton=20)
        # ConfigError: strategy 'linas': option 'populaton' is not known; known: population, predictor
    """

    def __init__(self, kind: str, packages: Iterable[str] = ()) -> None:
        self.kind = kind
        self._packages = list(packages)
        self._items: dict[str, T] = {}
        self._walked: set[str] = set()
        self._entry_points_loaded = False
        self._import_failures: dict[str, str] = {}

    def register(self, name: str, options: type[BaseModel] | None = None) -> Callable[[T], T]:
        """Decorator registering a class or function under ``name`` (``options``: the
        pydantic model of its options, for a factory that cannot hold a nested class)."""
        def decorator(obj: T) -> T:
            existing = self._items.get(name)
            if existing is not None and existing is not obj:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            if options is not None:
                obj.options_model = options  # type: ignore[attr-defined]
            self._items[name] = obj
            return obj

        return decorator

    def build(self, name: str, /, *args: Any, **options: Any) -> Any:
        """``factory(*args, **validated options)`` of the component registered as ``name``.

        ``args`` are what every component of the kind receives; ``options`` are the
        user's, validated by :meth:`options`. A bad option raises a one-line
        :class:`ConfigError` (see the class docstring for an example).
        """
        return self.get(name)(*args, **self.options(name, options, n_args=len(args)))

    def options(self, name: str, options: Mapping[str, Any] | None = None, n_args: int = 0) -> dict[str, Any]:
        """The keyword arguments that :meth:`build` passes for ``options``, validated.

        With an options model: every field of it (defaults included), as validated by
        pydantic. Without one: the options as given, after checking their names
        against the factory's signature (after its ``n_args`` positional parameters).
        """
        factory = self.get(name)
        given = dict(options or {})
        where = f"{self.kind} '{name}'"
        model = options_model(factory)
        if model is None:
            _check_signature(factory, given, n_args, where)
            return given
        if model.model_config.get("extra") != "allow":
            _check_known(given, list(model.model_fields), where)
        try:
            parsed = model.model_validate(given)
        except ValidationError as exc:
            raise ConfigError(f"{where}: {_first_error(exc)}") from None
        return {**{k: getattr(parsed, k) for k in type(parsed).model_fields}, **(parsed.model_extra or {})}

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


def _check_known(given: Mapping[str, Any], known: list[str], where: str) -> None:
    unknown = [k for k in given if k not in known]
    if unknown:
        raise ConfigError(f"{where}: option '{unknown[0]}' is not known; known: {', '.join(known) or 'none'}")


def _check_signature(factory: Any, given: dict[str, Any], n_args: int, where: str) -> None:
    """Option names of a factory without an options model, from its signature."""
    try:
        params = list(inspect.signature(factory).parameters.values())[n_args:]
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return
    keywords = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        _check_known(given, [p.name for p in keywords], where)
    missing = [p.name for p in keywords if p.default is p.empty and p.name not in given]
    if missing:
        raise ConfigError(f"{where}: option '{missing[0]}' is required")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    if err["type"] == "missing":
        return f"option '{loc}' is required"
    return f"{loc}: {error_message(err)}" if loc else error_message(err)
