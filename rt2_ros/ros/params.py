"""Pydantic schemas as ROS 2 parameters: typed, ranged, described, read-only.

Every node of the package declares its parameters from a pydantic model through
:func:`declare_model_parameters`: the rt2 node from :class:`rt2_ros.config.RT2Config`
(:func:`declare_config_parameters`), the simulation's ``rt2_sim`` and ``servo_node`` from
the schemas in :mod:`rt2_ros.sim.settings`. Nested models become dotted names
(``control.period_s``); a ``prefix`` puts a whole schema under a name
(``moveit_servo.publish_period``). Each parameter gets the field's description, its
ROS type, and for numbers the ``floating_point_range`` / ``integer_range`` from the
field's ``ge``/``gt``/``le``/``lt`` (ROS ranges are inclusive; strict bounds are
enforced by the schema). Values are validated once at start-up, all errors in one
message; parameters are read-only afterwards.
"""

from __future__ import annotations

import sys
import typing
from typing import Any, Callable, TypeVar

import numpy as np
import rclpy.exceptions
from pydantic import BaseModel, ValidationError
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.node import Node

from rt2_ros.config import ConfigError, RT2Config, config_from_flat, flat_fields

__all__ = [
    "declare_model_parameters",
    "declare_config_parameters",
    "refuse_parameter_changes",
    "flat_defaults",
    "ros_type",
]

M = TypeVar("M", bound=BaseModel)

_ARRAYS = {
    float: ParameterType.PARAMETER_DOUBLE_ARRAY,
    int: ParameterType.PARAMETER_INTEGER_ARRAY,
    str: ParameterType.PARAMETER_STRING_ARRAY,
    bool: ParameterType.PARAMETER_BOOL_ARRAY,
}

_TYPE_NAMES = {
    ParameterType.PARAMETER_BOOL: "a bool (true/false)",
    ParameterType.PARAMETER_INTEGER: "an integer",
    ParameterType.PARAMETER_DOUBLE: "a double (write 1.0, not 1)",
    ParameterType.PARAMETER_STRING: "a string",
    ParameterType.PARAMETER_DOUBLE_ARRAY: "a list of doubles (write [0.0, 1.0])",
    ParameterType.PARAMETER_INTEGER_ARRAY: "a list of integers",
    ParameterType.PARAMETER_STRING_ARRAY: "a list of strings",
    ParameterType.PARAMETER_BOOL_ARRAY: "a list of bools",
}


def ros_type(annotation) -> tuple[int, str]:
    """(ParameterType, constraint text) for a schema field annotation.

    Raises:
        TypeError: a type with no ROS parameter type (a new schema type needs a mapping here).
    """
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return ParameterType.PARAMETER_BOOL, ""
    if annotation is int:
        return ParameterType.PARAMETER_INTEGER, ""
    if annotation is float:
        return ParameterType.PARAMETER_DOUBLE, ""
    if annotation is str:
        return ParameterType.PARAMETER_STRING, ""
    if origin is typing.Literal:
        return ParameterType.PARAMETER_STRING, "one of: " + ", ".join(map(str, typing.get_args(annotation)))
    if origin is list and len(typing.get_args(annotation)) == 1 and typing.get_args(annotation)[0] in _ARRAYS:
        return _ARRAYS[typing.get_args(annotation)[0]], ""
    raise TypeError(f"no ROS parameter type for {annotation!r}")


def _bounds(info) -> tuple[float | None, float | None, str]:
    """(lower, upper, text) from a pydantic field's ge/gt/le/lt constraints."""
    lo = hi = None
    text = []
    for m in info.metadata:
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None:
                text.append(f"{sym} {v}")
                if attr in ("ge", "gt"):
                    lo = v
                else:
                    hi = v
    return lo, hi, " and ".join(text)


def _descriptor(name: str, info, ptype: int, constraint: str) -> tuple[ParameterDescriptor, str]:
    lo, hi, range_text = _bounds(info)
    # Constraints a validator enforces (not expressible as a type or range) are stated in
    # the field's json_schema_extra["constraints"].
    extra = info.json_schema_extra.get("constraints", "") if isinstance(info.json_schema_extra, dict) else ""
    desc = ParameterDescriptor(
        name=name,
        type=ptype,
        description=info.description or "",
        read_only=True,
        additional_constraints="; ".join(t for t in (constraint, extra, range_text) if t),
    )
    if ptype == ParameterType.PARAMETER_DOUBLE and (lo is not None or hi is not None):
        desc.floating_point_range = [
            FloatingPointRange(
                from_value=float(lo) if lo is not None else -sys.float_info.max,
                to_value=float(hi) if hi is not None else sys.float_info.max,
                step=0.0,
            )
        ]
    elif ptype == ParameterType.PARAMETER_INTEGER and (lo is not None or hi is not None):
        desc.integer_range = [
            IntegerRange(
                from_value=int(lo) if lo is not None else -(2**63),
                to_value=int(hi) if hi is not None else 2**63 - 1,
                step=1,
            )
        ]
    return desc, range_text


def _to_flat(model: BaseModel, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        v = getattr(model, name)
        if isinstance(v, BaseModel):
            out.update(_to_flat(v, f"{prefix}{name}."))
        else:
            out[prefix + name] = list(v) if isinstance(v, tuple) else v
    return out


def flat_defaults(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """``{"camera.rate_hz": 10.0, ...}``: the schema's defaults by parameter name
    (every field of ``model`` must have a default)."""
    return _to_flat(model(), prefix)


def _validate_flat(model: type[M], flat: dict[str, Any], what: str) -> M:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *path, leaf = key.split(".")
        d = nested
        for p in path:
            d = d.setdefault(p, {})
        d[leaf] = value
    try:
        return model.model_validate(nested)
    except ValidationError as e:
        parts = [f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in e.errors()]
        raise ConfigError(f"invalid {what}: " + "; ".join(parts)) from None


def _plain(v: Any) -> Any:
    """rclpy hands arrays back as ``array.array`` / numpy / tuples: make them lists."""
    return list(v) if isinstance(v, (tuple, np.ndarray)) or type(v).__name__ == "array" else v


def declare_model_parameters(
    node: Node,
    model: type[M],
    *,
    prefix: str = "",
    what: str | None = None,
    build: Callable[[dict[str, Any]], M] | None = None,
) -> M:
    """Declare every leaf of ``model`` as a typed, read-only ROS parameter and validate.

    Args:
        node: the node to declare on (values come from its overrides / params files).
        model: a pydantic model whose fields all have defaults.
        prefix: put before every name, e.g. ``"moveit_servo."``.
        what: what the error message calls the parameters (default ``"<node name> parameters"``).
        build: turns the values by name (without ``prefix``) into the model, raising
            :class:`ConfigError` (default: nest the dotted names and validate).

    Returns:
        The validated model instance.

    Raises:
        ConfigError: every wrong type and invalid value, in one message
            (``"invalid <what>: name: reason; ..."``).
        TypeError: a field type with no ROS parameter type (a schema bug).
    """
    what = what or f"{node.get_name()} parameters"
    defaults = flat_defaults(model)
    errors: list[str] = []
    values: dict[str, Any] = {}
    for name, info, ann in flat_fields(model):
        ptype, constraint = ros_type(ann)
        full = prefix + name
        desc, range_text = _descriptor(full, info, ptype, constraint)
        values[name] = defaults[name]
        try:
            node.declare_parameter(full, defaults[name], desc)
        except rclpy.exceptions.InvalidParameterTypeException:
            errors.append(f"{full}: must be {_TYPE_NAMES.get(ptype, 'another type')}")
            continue
        except rclpy.exceptions.InvalidParameterValueException:
            errors.append(f"{full}: out of range, must be {range_text}")
            continue
        except rclpy.exceptions.ParameterException as e:
            errors.append(f"{full}: {e}")
            continue
        values[name] = _plain(node.get_parameter(full).value)
    try:
        # The schema's checks (cross-field ones too).
        result = build(values) if build is not None else _validate_flat(model, values, what)
    except ConfigError as e:
        errors.append(str(e).removeprefix(f"invalid {what}: "))
    if errors:
        raise ConfigError(f"invalid {what}: " + "; ".join(errors))
    return result


def declare_config_parameters(node: Node) -> RT2Config:
    """Declare every :class:`~rt2_ros.config.RT2Config` leaf as a typed, read-only ROS
    parameter and validate (see :func:`declare_model_parameters`).

    Returns:
        The validated :class:`~rt2_ros.config.RT2Config`.

    Raises:
        ConfigError: every wrong type and invalid value, in one message.
    """
    return declare_model_parameters(node, RT2Config, what="rt2_ros configuration", build=config_from_flat)


def refuse_parameter_changes(node: Node, who: str) -> None:
    """Refuse every parameter change after start-up (except ``use_sim_time``), with a
    reason that says ``who`` reads them at start-up only."""

    def check(params) -> SetParametersResult:
        names = [p.name for p in params if p.name != "use_sim_time"]
        if names:
            return SetParametersResult(
                successful=False,
                reason=f"{who} reads {', '.join(names)} at start-up only; restart it to change them",
            )
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(check)
