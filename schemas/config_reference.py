"""The configuration reference, generated from the models: every key of every file, its type,
default and description. `python -m schemas.config_reference` prints it as Markdown."""
from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from schemas.config_models import CONFIG_FILES


@dataclass(frozen=True)
class KeyDoc:
    """One key of a configuration file."""

    file: str
    key: str            # TOML key path, e.g. sources.<name>.files[].layout
    type: str
    default: str        # "" when the key is required
    required: bool
    description: str


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(get_args(annotation)[0])
    if origin is typing.Literal:
        return " or ".join(f"`{a}`" for a in get_args(annotation))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        parts = [_type_name(a) for a in get_args(annotation) if a is not type(None)]
        return " or ".join(dict.fromkeys(parts))
    if origin is list:
        return f"list of {_type_name(get_args(annotation)[0])}"
    if origin is dict:
        return "table"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    names = {"str": "text", "int": "integer", "float": "number", "bool": "true/false", "time": "time \"HH:MM\"",
             "date": "date YYYY-MM-DD"}
    return names.get(getattr(annotation, "__name__", ""), getattr(annotation, "__name__", str(annotation)))


def _keys(file: str, model: type[BaseModel], prefix: str) -> list[KeyDoc]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        if field.is_required():
            default = ""
        elif field.default is None:
            default = "(not set)"
        elif field.default is PydanticUndefined or field.default in ([], {}, ""):
            default = "(empty)"
        else:
            default = f"`{field.default}`"
        rows.append(KeyDoc(file, key, _type_name(field.annotation), default, field.is_required(),
                           field.description or ""))
        annotation = field.annotation
        origin = get_origin(annotation)
        inner = get_args(annotation)[1] if origin is dict else annotation
        suffix = ".<name>." if origin is dict else ("[]." if origin is list else ".")
        for sub in _models_in(inner):
            if len(_models_in(inner)) > 1:        # one of several kinds of table (a source, by transport)
                kind = sub.model_fields.get("transport")
                which = f"transport = \"{get_args(kind.annotation)[0]}\"" if kind else sub.__name__
                rows.append(KeyDoc(file, f"{key}{suffix.rstrip('.')}", f"table ({which})", "", False,
                                   (sub.__doc__ or "").strip().split("\n")[0]))
            rows += _keys(file, sub, f"{key}{suffix}")
    return rows


def reference() -> list[KeyDoc]:
    """Every key of every configuration file, in file order."""
    return [row for file, model in CONFIG_FILES.items() for row in _keys(file, model, "")]


def markdown() -> str:
    out = []
    for file, model in CONFIG_FILES.items():
        out += [f"## {file}", "", (model.__doc__ or "").strip(), "", "| key | type | default | description |",
                "|---|---|---|---|"]
        out += [f"| `{r.key}` | {r.type} | {'required' if r.required else r.default} | {r.description} |"
                for r in reference() if r.file == file]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown())
