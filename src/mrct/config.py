"""Loading and validating the workflow configuration.

The same function validates the config inside Snakemake (``rules/common.smk``) and in the
tests, so a bad key fails identically in both, with a message that names the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """The configuration does not match the schema; the message names the offending key."""


def load_schema() -> dict[str, Any]:
    text = resources.files("mrct").joinpath("schemas/config.schema.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties":
        # The unexpected key is not part of the path jsonschema reports; add it so the
        # message points at the typo itself rather than at its parent.
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        parts.append(",".join(extra))
    return ".".join(parts) or "<top level>"


def validate_config(config: Mapping[str, Any]) -> None:
    """Raise ConfigError listing every invalid key of ``config``."""
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(dict(config)), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"config key '{_key_path(e)}': {e.message}" for e in errors]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` over ``base`` the way Snakemake merges ``--configfile`` files."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(*paths: str | Path) -> dict[str, Any]:
    """Load YAML files, later ones merged over earlier ones, and validate the result."""
    config: dict[str, Any] = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            config = deep_merge(config, yaml.safe_load(handle) or {})
    validate_config(config)
    return config
