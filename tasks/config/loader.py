"""Loading the pipeline config: defaults < TOML file < ``RECPIPE__SECTION__FIELD``
environment variables < explicit overrides (CLI options), with errors that name where a
bad value came from and never echo a secret.

``RECPIPE_WORKSPACE`` sets the workspace folder. A list setting from the environment is
a JSON list (``["a", "b"]``) or comma-separated values (``a,b``), whatever section or
model declares it.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, SecretBytes, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsError,
    TomlConfigSettingsSource,
)

from tasks.config.pipeline import ENV_DELIMITER, ENV_PREFIX, LOADED_SOURCES, PipelineConfig
from tasks.errors import ConfigError

ENV_WORKSPACE = "RECPIPE_WORKSPACE"


def _split_list(value: str) -> list[Any]:
    """A list from the environment: JSON (``["a", "b"]``) or comma-separated (``a,b``)."""
    text = value.strip()
    if text.startswith("["):
        try:
            return list(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ValueError(
                'expected a JSON list such as ["a", "b"] or comma-separated values such as a,b '
                f"({exc.msg})"
            ) from exc
    return [part.strip() for part in text.split(",") if part.strip()]


def _is_list(annotation: Any) -> bool:
    """Whether a setting holds a list (or an optional one)."""
    if get_origin(annotation) in (Union, UnionType):
        return any(_is_list(arg) for arg in get_args(annotation))
    return get_origin(annotation) is list


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, str]) -> None:
        self._variables = {name.lower(): value for name, value in variables.items()}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._variables

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        """A list setting: a JSON list or comma-separated values; anything else: JSON."""
        if field is not None and _is_list(field.annotation) and isinstance(value, str):
            return _split_list(value)
        # pydantic-settings types ``field`` as FieldInfo, yet handles None and passes it itself
        return super().decode_complex_value(field_name, field, value)  # type: ignore[arg-type]


def _keys(model: type[BaseModel]) -> dict[str, Any]:
    """A section's keys as written in TOML and env var names (aliases over field names)."""
    return {field.alias or name: field for name, field in model.model_fields.items()}


def _section_class(annotation: Any) -> type[BaseModel] | None:
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


def _model_at(path: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = PipelineConfig
    for key in path:
        field = _keys(model).get(key) if model is not None else None
        model = _section_class(field.annotation) if field is not None else None
    return model


def _mentions_secret(annotation: Any) -> bool:
    return annotation in (SecretStr, SecretBytes) or any(
        _mentions_secret(arg) for arg in get_args(annotation)
    )


def _secret_paths(
    model: type[BaseModel], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    for key, field in _keys(model).items():
        if _mentions_secret(field.annotation):
            yield (*prefix, key)
        elif (section := _section_class(field.annotation)) is not None:
            yield from _secret_paths(section, (*prefix, key))


# Values never echoed in an error: secret-typed fields, and the database URL (it carries a
# password; it becomes a SecretStr later).
_SECRET_PATHS = frozenset({("publish", "database_url"), *_secret_paths(PipelineConfig)})


def _holds_secret(loc: tuple[Any, ...]) -> bool:
    keys = tuple(str(key) for key in loc)
    return any(keys[: len(path)] == path or path[: len(keys)] == keys for path in _SECRET_PATHS)


def _env_variables(environ: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """The ``RECPIPE__*`` variables in ``environ`` and the key path each sets.

    ``RECPIPE_WORKSPACE`` counts as ``RECPIPE__WORKSPACE``. A name that is not a known key
    is an error, and so are a whole section given as anything but a JSON object and a
    list that starts like JSON but is not.
    """
    paths: dict[str, tuple[str, ...]] = {}
    for name in sorted(environ):
        if name.upper().startswith(ENV_PREFIX):
            paths[name] = tuple(name[len(ENV_PREFIX) :].lower().split(ENV_DELIMITER))
    if environ.get(ENV_WORKSPACE):
        double = [n for n, path in paths.items() if path == ("workspace",)]
        if double and environ[double[0]] != environ[ENV_WORKSPACE]:
            raise ConfigError(
                f"environment variables {ENV_WORKSPACE} and {double[0]} name different "
                "workspaces; expected one of them; unset the other"
            )
        paths[ENV_WORKSPACE] = ("workspace",)
    for name, path in paths.items():
        model: type[BaseModel] | None = PipelineConfig
        for depth, key in enumerate(path):
            dotted = ".".join(path[: depth + 1])
            if model is None:
                raise ConfigError(
                    f"environment variable {name}: {'.'.join(path[:depth])} is a setting, not a "
                    f"section, so it has no key {key!r}; expected "
                    f"{ENV_PREFIX}{ENV_DELIMITER.join(path[:depth]).upper()}=<value>"
                )
            keys = _keys(model)
            if key not in keys:
                raise ConfigError(
                    f"environment variable {name}: unknown key {dotted!r}; expected one of "
                    f"{', '.join(keys)}{' under ' + '.'.join(path[:depth]) if depth else ''}; "
                    "rename or unset the variable"
                )
            model = _section_class(keys[key].annotation)
        if model is None and _is_list(keys[key].annotation):
            try:
                _split_list(environ[name])
            except ValueError as exc:
                raise ConfigError(
                    f"invalid recpipe configuration: {'.'.join(path)}: {exc} (got "
                    f"{environ[name]!r} from environment variable {name}); fix the variable"
                ) from None
        if model is not None and not _is_json_object(environ[name]):
            raise ConfigError(
                f"environment variable {name}: {'.'.join(path)} is a section; expected a JSON "
                f'object such as {{"{next(iter(_keys(model)))}": ...}}, or one variable per '
                f"setting such as {name}{ENV_DELIMITER}{next(iter(_keys(model))).upper()}"
            )
    return paths


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


def _provides(data: Mapping[str, Any], loc: tuple[Any, ...]) -> bool:
    """Whether ``data`` (one source's values) holds the value at ``loc`` or the one above it."""
    node: Any = data
    for key in loc:
        if not isinstance(node, Mapping):
            return True
        if key not in node:
            return False
        node = node[key]
    return bool(data)


def _describe(error: Any, origin: str | None) -> str:
    loc = tuple(error["loc"])
    text = f"{'.'.join(str(key) for key in loc) or '(top level)'}: {error['msg']}"
    if error["type"] == "extra_forbidden":
        # the value of an unknown key helps nobody and may be a mistyped secret
        model = _model_at(loc[:-1])
        if model is not None:
            text += f"; expected one of {', '.join(_keys(model))}"
        return text + (f" (from {origin})" if origin else "")
    got = "<hidden>" if _holds_secret(loc) else repr(error.get("input"))
    return text + f" (got {got}" + (f" from {origin})" if origin else ")")


def load_config(
    path: Path | str | None = None,
    overrides: dict[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> PipelineConfig:
    """Build the pipeline config: defaults < TOML file < env vars < overrides.

    ``environ`` replaces ``os.environ`` (``{}``: ignore the environment).
    """
    environ = os.environ if environ is None else environ
    env_paths = _env_variables(environ)
    variables = {name: environ[name] for name in env_paths if name != ENV_WORKSPACE}
    if ENV_WORKSPACE in env_paths:
        variables[f"{ENV_PREFIX}WORKSPACE"] = environ[ENV_WORKSPACE]
    sources: list[PydanticBaseSettingsSource] = [_MappingEnvSource(PipelineConfig, variables)]
    file_data: dict[str, Any] = {}
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"config file {path} not found; expected a TOML file such as recpipe.toml; "
                "check the path given with --config"
            )
        try:
            toml = TomlConfigSettingsSource(PipelineConfig, toml_file=path)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}; fix the file") from exc
        sources.append(toml)
        file_data = toml()

    token = LOADED_SOURCES.set(tuple(sources))
    try:
        config = PipelineConfig(**(overrides or {}))
    except SettingsError as exc:  # the checks in _env_variables should leave none
        raise ConfigError(
            f"invalid recpipe configuration: {exc}; fix the RECPIPE__* environment variables"
        ) from exc
    except ValidationError as exc:
        given = InitSettingsSource(PipelineConfig, init_kwargs=dict(overrides or {}))()

        def origin(loc: tuple[Any, ...]) -> str | None:
            if _provides(given, loc):
                return "the CLI options / overrides"
            names = [
                name
                for name, env_path in env_paths.items()
                if env_path == loc[: len(env_path)] or loc == env_path[: len(loc)]
            ]
            if names:
                return f"environment variable {', '.join(names)}"
            return f"config file {path}" if _provides(file_data, loc) else None

        problems = "; ".join(_describe(err, origin(tuple(err["loc"]))) for err in exc.errors())
        raise ConfigError(
            f"invalid recpipe configuration: {problems}; fix each value where it comes from "
            "(the TOML file, the RECPIPE__* environment variable or the command-line option)"
        ) from exc
    finally:
        LOADED_SOURCES.reset(token)
    return config.model_copy(update={"workspace": config.workspace.expanduser().resolve()})


def dump_with_secrets(config: PipelineConfig) -> str:
    """The config as JSON with its secrets' real values: only for handing it to a child
    process through a pipe, never for a log, a file or a Prefect parameter."""
    data = config.model_dump(mode="json", by_alias=True)
    if config.publish.database_url is not None:
        data["publish"]["database_url"] = config.publish.database_url.get_secret_value()
    return json.dumps(data)
