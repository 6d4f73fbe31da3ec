"""Registries through which supernet packages extend the ``linas`` command.

A supernet package registers a trainer (``linas train-supernet CONFIG``) and a latency
lookup-table builder (``linas build-lut CONFIG``) under the name that configs give as
``supernet:``. Each is called as ``fn(settings: dict, config_path: pathlib.Path)`` with
the parsed YAML and validates the settings itself.
"""

from linas.registry import Registry

trainers: Registry = Registry("supernet trainer", packages=["supernets"])
lut_builders: Registry = Registry("lookup-table builder", packages=["supernets"])
