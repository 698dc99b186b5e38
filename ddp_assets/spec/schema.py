"""A JSON Schema for a product's ``defs.yaml``, for editors and other tools.

The schema is generated from :class:`~ddp_assets.spec.model.ProductSpec`, so it never drifts
from the model. Rules that the model checks in Python validators (a freshness SLO sets exactly
one of ``max_age``/``deadline`` in a given format; ``schedule`` goes with ``refresh: schedule``)
are added by hand below so that an editor flags them too. The checks that span several files
(unique product ids, existing models and contracts, upstream ports) remain ``ddp validate``'s.

Point the YAML language server at it with a first line such as::

    # yaml-language-server: $schema=<path or URL of the generated schema file>

or print it with ``python -m ddp_assets.spec.schema``.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from typing import Any

from ddp_assets.spec.loader import COMPONENT_TYPE
from ddp_assets.spec.model import CLOCK, DURATION, ProductSpec

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://ddp.dev/schemas/data-product-spec.json"


def _js_pattern(pattern: re.Pattern[str]) -> str:
    """A Python regex as a JSON Schema (ECMA-262) pattern: no ``(?P<name>`` groups."""
    return re.sub(r"\(\?P<\w+>", "(", pattern.pattern)


def _nullable_string(pattern: str) -> dict[str, Any]:
    return {"anyOf": [{"type": "string", "pattern": pattern}, {"type": "null"}]}


def _freshness(definition: dict[str, Any]) -> None:
    """Freshness: formats of ``max_age``/``deadline``, and exactly one of the two."""
    properties = definition["properties"]
    for name, pattern in (("max_age", DURATION), ("deadline", CLOCK)):
        properties[name] = {
            **{k: v for k, v in properties[name].items() if k != "anyOf"},
            **_nullable_string(_js_pattern(pattern)),
        }
    definition["oneOf"] = [
        {"required": [name], "properties": {name: {"type": "string"}}}
        for name in ("max_age", "deadline")
    ]


# A landing glob that is absolute (/, \\, ~, C:) or climbs out of the landing zone ('..').
_OUTSIDE_LANDING = r"^([/\\~]|[A-Za-z]:)|(^|[/\\])\.\.([/\\]|$)"
_ZERO_DURATION = r"^0+\s*[mhd]$"


def _file_input_port(definition: dict[str, Any]) -> None:
    """File input port: its glob stays inside the landing zone."""
    definition["properties"]["path"]["not"] = {"pattern": _OUTSIDE_LANDING}


def _no_zero_durations(definition: dict[str, Any]) -> None:
    """Freshness: a duration of zero never holds (the upper bound, 3650d, is the loader's)."""
    for name in ("max_age", "warn_after"):
        definition["properties"][name]["not"] = {"pattern": _ZERO_DURATION}


def _slos(definition: dict[str, Any]) -> None:
    """SLOs: ``refresh: schedule`` needs a cron ``schedule``; other refresh modes take none."""
    definition["if"] = {"required": ["refresh"], "properties": {"refresh": {"const": "schedule"}}}
    definition["then"] = {
        "required": ["schedule"],
        "properties": {"schedule": {"type": "string", "minLength": 1}},
    }
    definition["else"] = {
        "properties": {
            "schedule": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 0}]}
        }
    }


@cache
def _build() -> dict[str, Any]:
    attributes = ProductSpec.model_json_schema(mode="validation")
    definitions: dict[str, Any] = attributes.pop("$defs", {})
    _freshness(definitions["Freshness"])
    _no_zero_durations(definitions["Freshness"])
    _file_input_port(definitions["FileInputPort"])
    _slos(definitions["SLOs"])
    definitions["ProductSpec"] = attributes
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": "ddp data product",
        "description": (
            "A data product's defs.yaml: a ddp_assets.components.DataProduct component whose "
            "attributes are the product spec (id, owners, ports, SLOs, policies)."
        ),
        "type": "object",
        "additionalProperties": False,
        "required": ["type", "attributes"],
        "properties": {
            "type": {
                "const": COMPONENT_TYPE,
                "description": "The Dagster component type; always the DataProduct component.",
            },
            "attributes": {"$ref": "#/$defs/ProductSpec"},
            # Dagster's own component keys, which the loader accepts alongside the spec.
            "requirements": {
                "type": "object",
                "description": "Dagster component requirements (e.g. environment variables).",
            },
            "post_processing": {
                "type": "object",
                "description": "Dagster post-processing of the component's assets.",
            },
        },
        "$defs": definitions,
    }


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a whole product ``defs.yaml`` file."""
    return copy.deepcopy(_build())


if __name__ == "__main__":
    print(json.dumps(spec_json_schema(), indent=2))
