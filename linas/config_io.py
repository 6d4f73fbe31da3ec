"""Reading YAML into validated, typed objects with one-line errors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from linas.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a YAML mapping (safe loader: no code runs)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not a UTF-8 text file (byte {exc.start} is {exc.object[exc.start]:#04x})") from None
    except OSError as exc:
        raise ConfigError(f"{p}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of settings at the top level")
    return data


def parse(model: type[M], data: Any, where: str = "config") -> M:
    """Validate ``data`` into ``model``; the first problem becomes a one-line ConfigError."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        raise ConfigError(f"{where}: {loc}: {error_message(err)}") from None


def error_message(err: Mapping[str, Any]) -> str:
    """The text of one pydantic error: a validator's own words without pydantic's
    "Value error, " prefix; "unknown key" for a key the model does not have."""
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "value_error":
        return str(err["ctx"]["error"])
    return err["msg"]


class StrictModel(BaseModel):
    """Base for config models: unknown keys are errors."""

    model_config = {"extra": "forbid", "frozen": True}
