"""Turning `--target` strings and targets files into Target objects."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from ..problems import Problem, did_you_mean, schema_problems
from ..yamlload import YamlError, load_documents
from .address import AddressTarget
from .base import Target, TargetError, TargetParams, parameter_changes, parameters, sanitize_label
from .process import BuiltinTarget, CommandTarget

_LABEL = re.compile(r"^([A-Za-z0-9_.-]+)=(.+)$")
_HOSTPORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+)):(?P<port>\d{1,5})$")


def parse_target(text: str, params: TargetParams | None = None) -> Target:
    """`builtin`, `HOST:PORT`, `[::1]:PORT`, `cmd:COMMAND {port}`, each optionally `LABEL=...`."""
    params = params or TargetParams()
    text = text.strip()
    label = None
    match = _LABEL.match(text)
    if match and not text.startswith(("cmd:", "command:", "image:")):
        label, text = match.group(1), match.group(2).strip()
    if not text:
        raise TargetError("empty target")
    if text == "builtin":
        return BuiltinTarget(label=sanitize_label(label or "builtin"), spec="builtin", params=params)
    for prefix in ("cmd:", "command:"):
        if text.startswith(prefix):
            command = text[len(prefix):].strip()
            if not command:
                raise TargetError(f"target {text!r}: the command is empty")
            if "{port}" not in command:
                raise TargetError(f"target {text!r}: the command must contain {{port}} (the port to listen on)")
            default = "cmd-" + Path(command.split()[0]).name if command.split() else "cmd"
            if len(command.split()) > 1:
                default += "-" + Path(command.split()[-1]).stem
            return CommandTarget(label=sanitize_label(label or default), spec=text, params=params, command=command)
    if text.startswith("image:") or (text.startswith("preset:") and not _HOSTPORT.match(text)):
        from .container import ImageTarget  # imported lazily: testcontainers is heavy

        prefix, _, rest = text.partition(":")
        return ImageTarget.from_spec(rest, label, params, preset=prefix == "preset")
    hp = _HOSTPORT.match(text)
    if hp:
        port = int(hp.group("port"))
        if not 0 < port < 65536:
            raise TargetError(f"target {text!r}: port out of range")
        host = hp.group("v6") or hp.group("host")
        return AddressTarget(label=sanitize_label(label or text), spec=text, params=params, host=host, port=port)
    kind = text.partition(":")[0]
    hint = did_you_mean(kind, ["builtin", "cmd", "command", "image", "preset"]) if ":" in text else ""
    raise TargetError(f"target {text!r} is not builtin, HOST:PORT, cmd:COMMAND, image:NAME or preset:NAME{hint}")


def _schema() -> dict[str, Any]:
    """The shipped schema, with the target parameters as TargetParams declares them (the shipped file carries
    the same, for editors: tests/unit/test_architecture.py keeps it current)."""
    schema = json.loads(resources.files("conformance").joinpath("schema/targets.schema.json").read_text())
    schema["properties"]["targets"]["items"]["properties"].update(parameter_schemas())
    return schema


def parameter_schemas() -> dict[str, dict[str, Any]]:
    return {p.name: p.schema for p in parameters()}


def load_targets_file(path: Path, defaults: TargetParams | None = None) -> tuple[list[Target], list[Problem]]:
    """A YAML file `targets: [...]`; each entry one kind (address, command, builtin, image) + parameters."""
    defaults = defaults or TargetParams()
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(name, 0, f"cannot read targets file: {exc}")]
    try:
        docs = load_documents(text)
    except YamlError as exc:
        return [], [Problem(name, exc.line, exc.message)]
    if len(docs) != 1:
        return [], [Problem(name, 1, "a targets file holds exactly one YAML document")]
    doc = docs[0]
    problems = schema_problems(jsonschema.Draft202012Validator(_schema()), doc, name)
    if problems:
        return [], problems
    targets: list[Target] = []
    labels: dict[str, int] = {}
    for i, entry in enumerate(doc.data["targets"]):
        line = doc.line(("targets", i))
        overrides, wrong = parameter_changes({p.name: entry[p.name] for p in parameters() if p.name in entry})
        if wrong:
            problems.extend(Problem(name, doc.line(("targets", i, key)), message) for key, message in wrong)
            continue
        params = defaults.with_(**overrides)
        kinds = [k for k in ("address", "command", "builtin", "image", "preset") if k in entry]
        try:
            if kinds[0] == "address":
                target = parse_target(str(entry["address"]), params)
            elif kinds[0] == "command":
                target = parse_target("cmd:" + entry["command"], params)
                if "workdir" in entry:
                    target.workdir = str((path.parent / entry["workdir"]).resolve())  # type: ignore[attr-defined]
            elif kinds[0] == "builtin":
                target = parse_target("builtin", params)
            else:
                from .container import ImageTarget

                target = ImageTarget.from_entry(entry, params)
        except TargetError as exc:
            problems.append(Problem(name, line, str(exc)))
            continue
        if "label" in entry:
            target.label = sanitize_label(str(entry["label"]))
        if "config" in entry:
            target.config = str(entry["config"])
        if "baseline" in entry:
            target.baseline = str(path.parent / entry["baseline"])
        if target.label in labels:
            first = labels[target.label]
            problems.append(Problem(name, line, f"duplicate label '{target.label}' (first at line {first})"))
            continue
        labels[target.label] = line
        targets.append(target)
    return targets, problems
