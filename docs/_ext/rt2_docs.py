"""Sphinx extension of the rt2_ros docs: generated parameter tables, re-export-aware
cross-references, and a check that every public API object has a docstring.

* ``rt2-parameters`` directive: a table of every parameter of a pydantic schema (name, ROS
  type, default, range, description), read from the schema the node declares its ROS
  parameters from (:func:`rt2_ros.ros.params.declare_model_parameters`), so the table cannot
  drift from the code. In MyST::

      ```{rt2-parameters} rt2_ros.config.RT2Config
      ```

  Option ``:prefix:`` puts a prefix before every name (``moveit_servo.``).
* ``missing-reference``: ``rt2_ros.codecs.ActionCodec`` (a name re-exported by a package
  ``__init__`` or the old ``rt2_ros.action_tokenizer`` path) and unqualified names used in
  a module's docstrings resolve to where the object is documented; anything else that does
  not resolve stays a warning (``nitpicky``), which the docs build turns into an error.
* ``autodoc-process-docstring``: a public module, class, exception, function, method or
  property without a docstring is a warning (so an error in the build).
"""

from __future__ import annotations

import importlib
import logging as pylogging
import os
import re
import typing
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

_SCALARS = {bool: "bool", int: "int", float: "double", str: "string"}


def ros_type_name(annotation: Any) -> tuple[str, str]:
    """(ROS parameter type name, choices text) of a schema field's annotation, as
    :func:`rt2_ros.ros.params.ros_type` maps it (without importing rclpy)."""
    if annotation in _SCALARS:
        return _SCALARS[annotation], ""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "string", "one of: " + ", ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin is list and len(typing.get_args(annotation)) == 1 and typing.get_args(annotation)[0] in _SCALARS:
        return _SCALARS[typing.get_args(annotation)[0]] + "[]", ""
    raise TypeError(f"no ROS parameter type for {annotation!r}")


def _range_text(info: Any) -> str:
    parts = []
    for m in info.metadata:
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None:
                parts.append(f"{sym} {v}")
        if getattr(m, "min_length", None):
            parts.append(f"at least {m.min_length} characters")
    return " and ".join(parts)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"' if value == "" else value
    return repr(list(value)) if isinstance(value, (list, tuple)) else repr(value)


def parameter_rows(model: type, prefix: str = "") -> list[tuple[str, str, str, str, str]]:
    """``(name, type, default, constraints, description)`` per leaf of a pydantic schema."""
    from pydantic import BaseModel

    rows = []

    def walk(m: type, pre: str, defaults: Any) -> None:
        for name, info in m.model_fields.items():
            ann = info.annotation
            value = getattr(defaults, name)
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{pre}{name}.", value)
                continue
            tname, choices = ros_type_name(ann)
            extra = info.json_schema_extra.get("constraints", "") if isinstance(info.json_schema_extra, dict) else ""
            constraints = "; ".join(t for t in (choices, extra, _range_text(info)) if t)
            rows.append((pre + name, tname, _fmt(value), constraints, info.description or ""))

    walk(model, prefix, model())
    return rows


def _cell(text: str, literal: bool = False) -> nodes.entry:
    entry = nodes.entry()
    para = nodes.paragraph()
    if literal:
        para += nodes.literal(text, text)
    else:
        # `x` spans become literals; the rest is plain text.
        for i, part in enumerate(text.split("`")):
            if part:
                para += nodes.literal(part, part) if i % 2 else nodes.Text(part)
    entry += para
    return entry


class ParametersDirective(SphinxDirective):
    """``rt2-parameters MODULE.SCHEMA``: the schema's parameters as a table."""

    required_arguments = 1
    option_spec = {"prefix": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        module, _, name = self.arguments[0].rpartition(".")
        try:
            model = getattr(importlib.import_module(module), name)
            rows = parameter_rows(model, self.options.get("prefix", ""))
        except Exception as e:  # noqa: BLE001 - any failure is a build error with its reason
            raise self.error(f"rt2-parameters {self.arguments[0]}: {e}") from None
        headers = ("parameter", "type", "default", "constraints", "description")
        table = nodes.table(classes=["rt2-parameters"])
        group = nodes.tgroup(cols=len(headers))
        table += group
        for width in (22, 8, 14, 20, 36):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        row = nodes.row()
        for h in headers:
            row += _cell(h)
        head += row
        group += head
        body = nodes.tbody()
        for pname, tname, default, constraints, desc in rows:
            row = nodes.row()
            row += _cell(pname, literal=True)
            row += _cell(tname)
            row += _cell(default, literal=True)
            row += _cell(constraints)
            row += _cell(desc)
            body += row
        group += body
        return [table]


def _canonical(target: str, module: str | None) -> str | None:
    """Where ``target`` (maybe relative to ``module``) is defined: ``module.qualname``."""
    candidates = [f"{module}.{target}", target] if module else [target]
    for cand in candidates:
        parts = cand.split(".")
        for i in range(len(parts) - 1, 0, -1):
            try:
                obj: Any = importlib.import_module(".".join(parts[:i]))
            except Exception:  # noqa: BLE001 - not a module: try a shorter prefix
                continue
            try:
                for attr in parts[i:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                break
            owner = getattr(obj, "__module__", None)
            qual = getattr(obj, "__qualname__", None)
            if owner and qual and f"{owner}.{qual}" != cand:
                return f"{owner}.{qual}"
            if isinstance(obj, type(importlib)) and obj.__name__ != cand:
                return obj.__name__
            break
    return None


def resolve_reexports(app, env, node, contnode):
    """``missing-reference``: retry a Python reference at the object's defining module."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not target.startswith(("rt2_ros", "")) or "rt2_ros" not in (target + (node.get("py:module") or "")):
        return None
    domain = env.get_domain("py")
    target = target.lstrip("~.")
    canonical = _canonical(target, node.get("py:module"))
    if canonical is None:
        # A short name (``step``, ``EePoseInput.anchor``) that names exactly one documented
        # object of the package; an ambiguous one stays a warning.
        hits = [name for name in domain.objects if name.startswith("rt2_ros.") and name.endswith("." + target)]
        if len(hits) != 1:
            return None
        canonical = hits[0]
    node = node.deepcopy()
    node["reftarget"] = canonical
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], canonical, node, contnode)


#: The module autodoc is documenting (set by its module docstring, which comes first).
_CURRENT_MODULE: list[str] = [""]


def skip_reexports(app, what, name, obj, skip, options):
    """``autodoc-skip-member``: a name a module only re-exports (``__all__`` of a package
    ``__init__``, the old ``rt2_ros.action_tokenizer`` path) is documented where it is
    defined, once; references to the re-exported name resolve there (:func:`resolve_reexports`)."""
    if what != "module" or skip:
        return None
    owner = getattr(obj, "__module__", None)
    if isinstance(owner, str) and owner.startswith("rt2_ros") and owner != _CURRENT_MODULE[0]:
        return True
    return None


_CODE = re.compile(r"(:[a-z:]+:`[^`]*`|``[^`]*``|`[^`]*`)")


def keep_attribute_text(app, what, name, obj, options, lines) -> None:
    """``autodoc-process-docstring`` before napoleon: napoleon reads an attribute's,
    property's or constant's first paragraph as ``type: description``, so ``Chunk mode:
    ...`` would become a type named "Chunk mode" (a broken reference). Where the text before
    the first colon is prose (has a space and is not a code literal), the colon becomes a dash."""
    if what not in ("attribute", "property", "data") or not lines:
        return
    line = lines[0]  # napoleon partitions the first line only
    while True:
        masked = _CODE.sub(lambda m: "x" * len(m.group(0)), line)
        col = next((j for j, c in enumerate(masked) if c == ":" and ":" not in masked[j - 1 : j + 2 : 2]), -1)
        before = line[:col].strip()
        if col < 0 or " " not in before or before.startswith("``"):
            break
        line = line[:col] + " -" + line[col + 1 :]
    lines[0] = line


_CHECKED = {"module", "class", "exception", "function", "method", "property"}


def check_docstring(app, what, name, obj, options, lines) -> None:
    """``autodoc-process-docstring``: warn about a public object without a docstring."""
    if what == "module":
        _CURRENT_MODULE[0] = name
    if what not in _CHECKED or any(p.startswith("_") for p in name.split(".")):
        return
    if not any(line.strip() for line in lines):
        logger.warning(f"public {what} {name} has no docstring", type="rt2", subtype="docstring")


class _WarningFile(pylogging.Handler):
    """Appends every warning Sphinx logs to a file (``RT2_DOCS_WARNINGS``), one per line, so
    scripts/build_docs.sh can fail on any: rosdoc2 runs Sphinx without ``-W``."""

    def __init__(self, path: str) -> None:
        super().__init__(level=pylogging.WARNING)
        self.path = path
        self.seen: set[str] = set()

    def emit(self, record: pylogging.LogRecord) -> None:
        # Sphinx hands a warning logged while reading to this handler, then once more when
        # it flushes its pending warnings: write each once.
        location = getattr(record, "location", None)
        location = location if isinstance(location, str) else ""
        line = f"{location}{': ' if location else ''}{record.levelname}: {record.getMessage()}".replace("\n", " ")
        if line in self.seen:
            return
        self.seen.add(line)
        with open(self.path, "a") as f:
            f.write(line + "\n")


def _undo_launch_logging() -> None:
    """ROS 2's ``launch`` (imported by rosdoc2's conf.py wrapper when it probes the
    exec_depends, and by our launch helpers) makes every logger created afterwards a
    ``LaunchLogger`` that does not propagate, so Sphinx's warnings from those loggers
    (cross-references, this extension) would bypass Sphinx's warning handler: never
    counted, never an error. Put the plain logger class back on them."""
    pylogging.setLoggerClass(pylogging.Logger)
    for name, lg in list(pylogging.Logger.manager.loggerDict.items()):
        if isinstance(lg, pylogging.Logger) and type(lg) is not pylogging.Logger and name.startswith("sphinx"):
            lg.__class__ = pylogging.Logger
            lg.handlers = []
            lg.propagate = True


def setup(app):
    """Register the directive, the event handlers and the warning file."""
    _undo_launch_logging()
    if os.environ.get("RT2_DOCS_WARNINGS"):
        pylogging.getLogger("sphinx").addHandler(_WarningFile(os.environ["RT2_DOCS_WARNINGS"]))
    app.add_directive("rt2-parameters", ParametersDirective)
    app.connect("autodoc-skip-member", skip_reexports)
    app.connect("missing-reference", resolve_reexports)
    app.connect("autodoc-process-docstring", check_docstring)
    app.connect("autodoc-process-docstring", keep_attribute_text, priority=400)  # napoleon: 500
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
