"""Registry.build: options validated by each component's pydantic model, one-line errors."""

from __future__ import annotations

import pytest
from pydantic import ConfigDict, Field

from linas.errors import ConfigError
from linas.evaluator import evaluators
from linas.executors import executors
from linas.registry import Options, Registry
from linas.spaces import spaces
from predictors import predictors


@pytest.fixture
def things() -> Registry:
    things = Registry("thing")

    @things.register("box")
    class Box:
        class Options(Options):
            size: int = Field(3, ge=1)
            colour: str = "red"

        def __init__(self, owner, size=3, colour="red"):
            self.owner, self.size, self.colour = owner, size, colour

    @things.register("big_box")
    class BigBox(Box):
        class Options(Box.Options):
            lid: bool = True

        def __init__(self, owner, lid=True, **options):
            super().__init__(owner, **options)
            self.lid = lid

    class LoudOptions(Options):
        volume: float = Field(ge=0)

    @things.register("bell", options=LoudOptions)
    def bell(volume):
        return ("bell", volume)

    @things.register("plain")
    def plain(owner, weight=1.0):
        return ("plain", owner, weight)

    class Passthrough(Options):
        model_config = ConfigDict(extra="allow")
        kind: str = "a"

    @things.register("open", options=Passthrough)
    def open_(**options):
        return options

    return things


def test_build_passes_positional_arguments_and_every_validated_option(things):
    box = things.build("box", "me", size="4")
    assert (box.owner, box.size, box.colour) == ("me", 4, "red")  # "4" validated into an int
    big = things.build("big_box", "me", size=2, lid=False)
    assert (big.size, big.lid) == (2, False)
    assert things.build("bell", volume=0.5) == ("bell", 0.5)
    assert things.build("plain", "me", weight=2) == ("plain", "me", 2)
    assert things.build("open", kind="b", extra=1) == {"kind": "b", "extra": 1}
    assert things.options("box", {"colour": "blue"}) == {"size": 3, "colour": "blue"}


@pytest.mark.parametrize("name, options, message", [
    ("box", {"sise": 4}, "thing 'box': option 'sise' is not known; known: size, colour"),
    ("box", {"size": 0}, "thing 'box': size: Input should be greater than or equal to 1"),
    ("box", {"size": "big"}, "thing 'box': size: Input should be a valid integer"),
    ("big_box", {"lid": "maybe"}, "thing 'big_box': lid: Input should be a valid boolean"),
    ("big_box", {"handle": 1}, "thing 'big_box': option 'handle' is not known; known: size, colour, lid"),
    ("bell", {}, "thing 'bell': option 'volume' is required"),
    ("bell", {"volume": -1}, "thing 'bell': volume: Input should be greater than or equal to 0"),
    ("plain", {"wieght": 2}, "thing 'plain': option 'wieght' is not known; known: weight"),
    ("nothing", {}, "unknown thing 'nothing'; known: bell, big_box, box, open, plain"),
])
def test_bad_options_are_one_line_config_errors(things, name, options, message):
    with pytest.raises(ConfigError) as err:
        things.build(name, *(["me"] if name not in ("bell", "open") else []), **options)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_a_model_level_check_is_reported_without_pydantic_prefixes(things):
    from pydantic import model_validator

    class Pair(Options):
        low: float = 0.0
        high: float = 1.0

        @model_validator(mode="after")
        def _ordered(self):
            if self.low >= self.high:
                raise ValueError("low must be below high")
            return self

    things.register("pair", options=Pair)(lambda low, high: (low, high))
    with pytest.raises(ConfigError, match=r"^thing 'pair': low must be below high$"):
        things.build("pair", low=2, high=1)


@pytest.mark.parametrize("registry, args", [
    (evaluators, ("space",)), (spaces, ()), (predictors, (0,)),
    (executors, ("synthetic_mbv3", "space", {})),
])
def test_every_registered_component_rejects_an_unknown_option_by_name(registry, args):
    """Every component, with or without an Options model, names itself and the option."""
    names = registry.names()
    assert names
    for name in names:
        if name == "pymoo_problem":  # passes unknown options on to pymoo (test_benchmarks checks it)
            continue
        with pytest.raises(ConfigError) as err:
            registry.build(name, *args, no_such_option=1)
        assert str(err.value).startswith(f"{registry.kind} '{name}': option 'no_such_option' is not known")
