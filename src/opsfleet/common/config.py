"""Shared configuration loading: YAML file < ``OPSFLEET_*`` environment < CLI flags.

The Manager defines one frozen pydantic model; :func:`load_config` merges the three
sources (:mod:`opsfleet.common.config_sources`), drops keys that the seed's files carried
but opsfleet does not use (with a warning), and validates. Every failure is a
:class:`ConfigError` whose message names the key. Environment variables are named after
the key path: ``grpc.tls.enabled`` is ``OPSFLEET_GRPC__TLS__ENABLED``. The daemon does not
use this module (it must not load pydantic): its schema is :mod:`opsfleet.common.daemon_schema`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from opsfleet.common.config_sources import merge_sources
from opsfleet.common.durations import parse_duration
from opsfleet.common.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written in config as ``30s``, ``5m``, ``1h`` or a number of seconds."""


class Section(BaseModel):
    """Base for config sections: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _leaf_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterable[tuple[str, ...]]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        path = (*prefix, name)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _leaf_paths(annotation, path)
        else:
            yield path


def describe_validation_error(error: ValidationError, prefix: str = "") -> str:
    """One line per failed key, each naming it (``config key 'a.b': message``); ``prefix``
    goes before the keys of a model validated as a section of a larger document."""
    lines = []
    for item in error.errors():
        key = ".".join([*([prefix] if prefix else []), *(str(p) for p in item["loc"])])
        msg = item["msg"]
        if item["type"] == "extra_forbidden":
            msg = "unknown key"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        lines.append(f"config key '{key}': {msg}")
    return "; ".join(lines)


def load_config(
    model: type[M],
    *,
    path: Path | None,
    env: Mapping[str, str],
    overrides: Mapping[str, Any],
    ignored: Iterable[str] = (),
) -> M:
    """Merge file, environment and CLI overrides (dotted keys) and validate into ``model``."""
    data = merge_sources(_leaf_paths(model), path=path, env=env, overrides=overrides, ignored=ignored)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from exc
