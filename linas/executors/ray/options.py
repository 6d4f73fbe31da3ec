"""The options of the ``ray`` executor, validated before Ray is imported."""

from __future__ import annotations

import re

from pydantic import Field, NonNegativeFloat, field_validator

from linas.registry import Options

_ADDRESS = re.compile(r"^(auto|local|ray://[^\s:/]+(:\d+)?|[^\s:/]+:\d+)$")


class RayOptions(Options):
    """Options of the ``ray`` executor (see :mod:`linas.executors.ray`)."""

    address: str | None = None
    num_workers: int | None = Field(None, ge=1)  # default: as many as the cluster's resources hold
    num_cpus: NonNegativeFloat = 1.0  # per worker
    num_gpus: NonNegativeFloat = 0.0  # per worker (fractions share a GPU)
    resources: dict[str, NonNegativeFloat] | None = None  # custom Ray resources per worker
    max_retries: int = Field(2, ge=0)  # re-runs of an evaluation whose worker died
    start_timeout: float = Field(600.0, gt=0)  # seconds for the first worker to build the evaluator
    init_options: dict[str, object] | None = None  # extra ray.init arguments

    @field_validator("address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None and not _ADDRESS.match(v):
            raise ValueError("must be null (start a local instance), 'auto', 'host:port' or 'ray://host:port'")
        return v

    @field_validator("init_options")
    @classmethod
    def _no_address(cls, v: dict[str, object] | None) -> dict[str, object] | None:
        if v and "address" in v:
            raise ValueError("give the address as the 'address' option, not in init_options")
        return v
