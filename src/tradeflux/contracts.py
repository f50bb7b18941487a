"""Topic contracts: a JSON Schema per topic value, and the check that a change breaks no reader.

The schemas are generated from the msgspec structs of the topic registry
(:mod:`tradeflux.topics`); nothing is written by hand. Other teams' consumers (Java,
ksqlDB, Kafka Connect) read them at ``/v1/schemas`` of the query service or from the
files ``python -m tradeflux.contracts write DIR`` makes at build time.

A release records its schemas under ``contracts/released/<version>/`` (``python -m
tradeflux.contracts release VERSION``); :func:`incompatibilities` compares the schemas
of the code with those of the newest release. What passes and what does not, for a
consumer built against the release and a producer that writes the released shape:

- a new topic, a new optional field (it has a default), a required field made optional,
  a new description: compatible;
- a topic or field removed or renamed, a field's type changed (``null`` allowed or not
  included), a new required field, an optional field made required, an enum value added
  or removed, a topic's key, cleanup policy or wire format changed: incompatible.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from tradeflux import __version__
from tradeflux.errors import TradefluxError
from tradeflux.topics import TOPICS, TopicDef

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
TOPIC_META = "x-tradeflux-topic"
RELEASED_DIR = Path(__file__).resolve().parents[2] / "contracts" / "released"
"""Where a source checkout keeps the schemas of each release (one folder per version)."""

_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$comment"})
_META_CHECKED = ("key", "cleanup", "wire")

Schema = dict[str, Any]


class ContractError(TradefluxError):
    """The released schemas cannot be read, or a release would overwrite one."""


@dataclass(frozen=True, order=True)
class Incompatibility:
    """One change that breaks a reader or writer of ``topic``; ``path`` names the field."""

    topic: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.topic}: {self.path}" if self.path else self.topic
        return f"{where}: {self.message}"


def topic_schema(topic: TopicDef) -> Schema:
    """Return the JSON Schema document of ``topic``'s record values.

    The document is self-contained (``$defs``); ``x-tradeflux-topic`` carries the key,
    cleanup policy, wire format and co-partitioning group. A compacted topic's tombstone
    is a record without a value, not a JSON ``null``.
    """
    meta: dict[str, Any] = {
        "name": topic.name,
        "key": topic.key,
        "cleanup": topic.cleanup.value,
        "wire": topic.wire,
        "copartition": topic.copartition,
        "tombstones": topic.compacted,
    }
    head: Schema = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:tradeflux:topic:{topic.name}",
        "title": topic.name,
        "description": topic.doc,
        TOPIC_META: meta,
    }
    if topic.value is bytes:
        # The dead letters carry another record's bytes as they came; what they are is
        # said in the tf.* headers, so the value has no schema of its own.
        return {**head, "contentMediaType": "application/octet-stream"}
    body: Schema = msgspec.json.schema(topic.value)
    return {**head, **body}


def registry_schemas(topics: Iterable[TopicDef] = TOPICS) -> dict[str, Schema]:
    """Return the schema document of every topic of the registry, by topic name."""
    return {t.name: topic_schema(t) for t in topics}


def write_schemas(folder: Path, schemas: Mapping[str, Schema]) -> list[Path]:
    """Write ``<topic>.schema.json`` per topic into ``folder``; return the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in sorted(schemas.items()):
        path = folder / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        paths.append(path)
    return paths


def read_schemas(folder: Path) -> dict[str, Schema]:
    """Read the ``*.schema.json`` files of ``folder``, by topic name."""
    schemas: dict[str, Schema] = {}
    for path in sorted(folder.glob("*.schema.json")):
        try:
            schema = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ContractError(
                f"cannot read the schema {path} ({exc}); restore it from git"
            ) from None
        schemas[path.name.removesuffix(".schema.json")] = schema
    return schemas


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split("."))


def released_versions(root: Path = RELEASED_DIR) -> list[str]:
    """Return the released versions under ``root``, oldest first."""
    if not root.is_dir():
        return []
    names = [p.name for p in root.iterdir() if p.is_dir() and p.name.replace(".", "").isdigit()]
    return sorted(names, key=_version_key)


def latest_release(root: Path = RELEASED_DIR) -> tuple[str, dict[str, Schema]]:
    """Return the newest released version and its schemas."""
    versions = released_versions(root)
    if not versions:
        raise ContractError(
            f"no released schemas under {root}; record them with "
            "`python -m tradeflux.contracts release VERSION`"
        )
    return versions[-1], read_schemas(root / versions[-1])


def incompatibilities(
    released: Mapping[str, Schema], current: Mapping[str, Schema]
) -> list[Incompatibility]:
    """Return every change from ``released`` to ``current`` that breaks a reader or writer.

    An empty list means a consumer or producer built against ``released`` keeps working.
    """
    found: list[Incompatibility] = []
    for name, old in released.items():
        new = current.get(name)
        if new is None:
            found.append(Incompatibility(name, "", "the topic was removed; its consumers break"))
            continue
        found.extend(_topic_changes(name, old, new))
    return sorted(found)


def _topic_changes(topic: str, old: Schema, new: Schema) -> list[Incompatibility]:
    found: list[Incompatibility] = []
    old_meta, new_meta = old.get(TOPIC_META, {}), new.get(TOPIC_META, {})
    for field in _META_CHECKED:
        if old_meta.get(field) != new_meta.get(field):
            was, now = old_meta.get(field), new_meta.get(field)
            message = f"its {field} changed from {was!r} to {now!r}; release a new topic instead"
            found.append(Incompatibility(topic, "", message))
    _compare(_Walk(topic, old, new, found), old, new, "")
    return found


@dataclass
class _Walk:
    """The two documents being compared (their ``$defs``) and what was found so far."""

    topic: str
    old_doc: Schema
    new_doc: Schema
    found: list[Incompatibility]

    def add(self, path: str, message: str) -> None:
        self.found.append(Incompatibility(self.topic, path, message))


def _resolve(schema: Schema, doc: Schema) -> Schema:
    seen: set[str] = set()
    while "$ref" in schema:
        ref = str(schema["$ref"])
        if ref in seen:
            raise ContractError(f"schema reference cycle at {ref}")
        seen.add(ref)
        schema = doc.get("$defs", {})[ref.rsplit("/", 1)[-1]]
    return schema


def _shape(schema: Schema, doc: Schema) -> Any:
    """Return ``schema`` with every reference resolved and every annotation dropped."""
    schema = _resolve(schema, doc)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _ANNOTATIONS or key.startswith("x-") or key in ("$schema", "$id", "$defs"):
            continue
        if isinstance(value, dict):
            if key == "properties":
                out[key] = {k: _shape(v, doc) for k, v in value.items()}
            else:
                out[key] = _shape(value, doc)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out[key] = [_shape(v, doc) for v in value]
        elif key in ("required", "enum"):
            out[key] = sorted(value, key=repr)
        else:
            out[key] = value
    return out


def _describe(schema: Schema, doc: Schema) -> str:
    schema = _resolve(schema, doc)
    if "anyOf" in schema:
        return " | ".join(_describe(s, doc) for s in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    kind = str(schema.get("title") or schema.get("type", "any"))
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"array of {_describe(schema['items'], doc)}"
    return kind + (f" ({schema['format']})" if "format" in schema else "")


def _branch_kind(schema: Schema, doc: Schema) -> str:
    schema = _resolve(schema, doc)
    return str(schema.get("title") or schema.get("type") or json.dumps(_shape(schema, doc)))


def _is_array(schema: Schema) -> bool:
    return schema.get("type") == "array" and isinstance(schema.get("items"), dict)


def _compare(walk: _Walk, old: Schema, new: Schema, path: str) -> None:
    old, new = _resolve(old, walk.old_doc), _resolve(new, walk.new_doc)
    if "properties" in old and "properties" in new:
        _compare_objects(walk, old, new, path)
        return
    if "anyOf" in old and "anyOf" in new:
        olds = {_branch_kind(s, walk.old_doc): s for s in old["anyOf"]}
        news = {_branch_kind(s, walk.new_doc): s for s in new["anyOf"]}
        if olds.keys() == news.keys():
            for kind, branch in olds.items():
                _compare(walk, branch, news[kind], path)
            return
    elif "enum" in old and "enum" in new:
        removed = sorted(set(old["enum"]) - set(new["enum"]), key=repr)
        added = sorted(set(new["enum"]) - set(old["enum"]), key=repr)
        if removed:
            walk.add(path, f"enum values {removed} were removed; records with them break readers")
        if added:
            walk.add(
                path, f"enum values {added} were added; a consumer that knows only the old values "
                "breaks",
            )  # fmt: skip
        return
    elif _is_array(old) and _is_array(new):
        _compare(walk, old["items"], new["items"], f"{path}[]")
        rest_old = {k: v for k, v in old.items() if k != "items"}
        rest_new = {k: v for k, v in new.items() if k != "items"}
        if _shape(rest_old, walk.old_doc) == _shape(rest_new, walk.new_doc):
            return
    if _shape(old, walk.old_doc) != _shape(new, walk.new_doc):
        walk.add(
            path,
            f"its type changed from {_describe(old, walk.old_doc)} to "
            f"{_describe(new, walk.new_doc)}; add a new optional field instead",
        )


def _compare_objects(walk: _Walk, old: Schema, new: Schema, path: str) -> None:
    old_props: dict[str, Schema] = old["properties"]
    new_props: dict[str, Schema] = new["properties"]
    old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
    added = [name for name in new_props if name not in old_props]
    prefix = f"{path}." if path else ""
    for name, schema in old_props.items():
        if name in new_props:
            _compare(walk, schema, new_props[name], prefix + name)
            if name in new_required and name not in old_required:
                walk.add(
                    prefix + name,
                    "was optional and is now required; records without it no longer decode",
                )
            continue
        shape = _shape(schema, walk.old_doc)
        twins = [a for a in added if _shape(new_props[a], walk.new_doc) == shape]
        hint = f" (renamed to {twins[0]}?)" if len(twins) == 1 else ""
        walk.add(
            prefix + name,
            f"was removed{hint}; a consumer that reads it breaks: keep the field, deprecated, "
            "or release a new topic",
        )
    for name in added:
        if name in new_required:
            walk.add(
                prefix + name,
                "is a new required field; records and producers of the release lack it: give it "
                "a default",
            )
    rest = ("properties", "required")
    old_rest = {k: v for k, v in old.items() if k not in rest}
    new_rest = {k: v for k, v in new.items() if k not in rest}
    if _shape(old_rest, walk.old_doc) != _shape(new_rest, walk.new_doc):
        walk.add(path or "(value)", "the object's rules changed (e.g. unknown fields forbidden)")


def _command_write(args: argparse.Namespace) -> int:
    paths = write_schemas(Path(args.folder), registry_schemas())
    print(f"wrote {len(paths)} topic schemas to {args.folder}")
    return 0


def _command_release(args: argparse.Namespace) -> int:
    root = Path(args.root)
    folder = root / args.version
    if folder.exists() and not args.replace:
        raise ContractError(
            f"{folder} exists: version {args.version} was released; pass --replace to record "
            "it again (only before the release is tagged)"
        )
    paths = write_schemas(folder, registry_schemas())
    print(f"recorded {len(paths)} topic schemas of release {args.version} in {folder}")
    return 0


def _command_check(args: argparse.Namespace) -> int:
    version, released = latest_release(Path(args.root))
    problems = incompatibilities(released, registry_schemas())
    for problem in problems:
        print(problem)
    print(f"{len(problems)} incompatible change(s) against release {version}")
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m tradeflux.contracts write|release|check``; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m tradeflux.contracts", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="write every topic's schema into FOLDER")
    write.add_argument("folder")
    write.set_defaults(run=_command_write)
    release = commands.add_parser(
        "release", help="record the schemas of a release under contracts/released/VERSION"
    )
    release.add_argument("version", nargs="?", default=__version__)
    release.add_argument("--root", default=str(RELEASED_DIR))
    release.add_argument("--replace", action="store_true")
    release.set_defaults(run=_command_release)
    check = commands.add_parser("check", help="compare the schemas with the newest release")
    check.add_argument("--root", default=str(RELEASED_DIR))
    check.set_defaults(run=_command_check)
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except ContractError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
