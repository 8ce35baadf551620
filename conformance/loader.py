"""YAML scenario files → validated Scenario objects, or one `file:line: problem` per mistake."""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from .model import (
    Action,
    Alternative,
    Authenticate,
    DeliveryCheck,
    Disconnect,
    EnhancedCodes,
    Expectation,
    Level,
    Outcome,
    PadTo,
    Payload,
    Read,
    RequireKeywords,
    Scenario,
    SecondSession,
    Sleep,
    Source,
    StartTLS,
    Template,
    TLSHandshake,
    Write,
)
from .problems import Problem, schema_problems, short_value
from .quotes import QuoteChecker, level_problem
from .templates import CREDENTIAL_VARIABLES, VARIABLES, TemplateError, parse_template, regex_with_values
from .yamlload import Document, YamlError, load_documents
from .yamlload import Path as DocPath

FRAGMENTS_FILE = "_fragments.yaml"
# the repository's catalog (a checkout) or the copy inside the package (a wheel)
SHIPPED_FRAGMENTS = next((p for p in (Path(__file__).resolve().parent.parent / "scenarios" / FRAGMENTS_FILE,
                                     Path(__file__).resolve().parent / "scenarios" / FRAGMENTS_FILE) if p.is_file()),
                         Path(__file__).resolve().parent / "scenarios" / FRAGMENTS_FILE)
MAX_FILE_OCTETS = 4 * 1024 * 1024
# Contract C5: every scenario that sends message content says whether its stored form is checked. On since the
# whole catalog (and the test fixtures) declare it; turn it off only while a catalog is being converted.
STORED_REQUIRED = True
PAD_TO = re.compile(r"^(?:\{(?P<var>[a-z][a-z0-9_]*)\}(?: *(?P<sign>[-+]) *(?P<n>[0-9]+))?|(?P<plain>[0-9]+))$")
ACTIONS = ("send", "raw", "message", "bdat", "pipeline", "tls", "wait", "silence", "close", "use", "require",
           "delivered", "enhanced_codes", "disconnect", "session", "starttls", "authenticate")
# Which modifiers each action takes ("expect" alone is an action too: read one reply).
MODIFIERS = {
    "send": {"expect", "repeat", "chunks", "delay", "timeout", "note", "capture"},
    "raw": {"expect", "repeat", "chunks", "delay", "timeout", "note", "capture"},
    "message": {"expect", "chunks", "delay", "timeout", "note", "capture", "pad_to"},
    "bdat": {"expect", "last", "size", "chunks", "delay", "timeout", "note", "capture"},
    "pipeline": {"chunks", "delay", "timeout", "note"},
    "expect": {"timeout", "note", "capture"},
    "tls": {"timeout", "note"},
    "wait": {"note"},
    "silence": {"note"},
    "close": {"timeout", "note"},
    "use": {"note"},
    "require": {"note"},
    "delivered": {"note"},
    "enhanced_codes": {"note"},
    "disconnect": {"note"},
    "session": {"note"},
    "starttls": {"timeout", "note"},
    "authenticate": {"timeout", "note"},
}
for _modifiers in MODIFIERS.values():
    _modifiers.add("check")  # C2: this step checks the requirement; the steps before it are setup
# steps that read a reply or the mailbox: the last such top-level step is checked when none is marked
READING = ("send", "raw", "message", "bdat", "pipeline", "expect", "silence", "close", "delivered", "session",
           "starttls")


@dataclass
class Catalog:
    scenarios: list[Scenario] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def load_schema() -> dict[str, Any]:
    return json.loads(resources.files("conformance").joinpath("schema/scenario.schema.json").read_text())


def load_requirement_ids() -> set[str]:
    data = json.loads(resources.files("conformance").joinpath("data/requirements.json").read_text())
    return {entry["id"] for entry in data["requirements"]}


def default_scenario_paths() -> list[Path]:
    """./scenarios when there is one; else the catalog shipped with the package (a checkout or a wheel)."""
    local = Path("scenarios")
    if local.is_dir():
        return [local]
    here = Path(__file__).resolve().parent
    for shipped in (here.parent / "scenarios", here / "scenarios"):
        if shipped.is_dir():
            return [shipped]
    return [local]


def is_scenario_file(path: Path) -> bool:
    return path.suffix in (".yaml", ".yml") and not path.name.startswith("_")


@dataclass
class _Fragment:
    steps: list[Any]
    doc: Document
    path: DocPath
    file: str
    lines: list[str]


@dataclass
class _Context:
    file: str
    doc: Document
    lines: list[str]
    problems: list[Problem]
    fragments: dict[str, _Fragment]
    using: tuple[str, ...] = ()
    in_session: bool = False  # compiling the steps of a second session
    captured: set[str] = field(default_factory=set)  # `capture:` names of the steps compiled so far

    def problem(self, path: DocPath, message: str) -> None:
        self.problems.append(Problem(self.file, self.doc.line(path), message))

    def source(self, path: DocPath) -> Source:
        first, last = self.doc.lines.get(path, (self.doc.line(path), self.doc.line(path)))
        chunk = self.lines[first - 1 : last]
        while chunk and not chunk[-1].strip():
            chunk.pop()
        text = textwrap.dedent("\n".join(chunk))
        return Source(self.file, first, first + max(len(chunk), 1) - 1, text)


class Loader:
    """Loads scenario files; caches fragment files so each is read once per Loader."""

    def __init__(self, requirement_ids: set[str] | None = None, base_fragments: Path | None = None,
                 check_quotes: bool = False) -> None:
        schema = load_schema()
        defs = schema["$defs"]
        self._defs = defs
        # The shipped fragments (greet, ehlo, …) are available to every scenario folder, not only ours.
        self._base_fragments = base_fragments if base_fragments is not None else SHIPPED_FRAGMENTS
        check = jsonschema.Draft202012Validator.check_schema
        check(schema)
        self._scenario_validator = jsonschema.Draft202012Validator({"$ref": "#/$defs/scenario", "$defs": defs})
        self._fragments_validator = jsonschema.Draft202012Validator({"$ref": "#/$defs/fragments", "$defs": defs})
        self._requirement_ids = requirement_ids
        # `validate` checks quotes against the shipped RFC texts and levels against the quotes' keywords;
        # running does not, so a user's own scenario with a loose quote still runs
        self._quotes = QuoteChecker() if check_quotes else None
        self._fragment_files: dict[Path, tuple[dict[str, _Fragment], list[Problem]]] = {}
        # files already loaded by this Loader (the CLI checks the catalog, then pytest collects it: once)
        self._files: dict[Path, tuple[tuple[int, int], tuple[list[Scenario], list[Problem]]]] = {}

    # ----- files -------------------------------------------------------------------------------
    def load_paths(self, paths: list[Path]) -> Catalog:
        catalog = Catalog()
        files: list[Path] = []
        for path in paths:
            if path.is_dir():
                files.extend(sorted(p for p in path.rglob("*") if p.is_file() and is_scenario_file(p)))
            elif path.exists():
                files.append(path)
            else:
                catalog.problems.append(Problem(str(path), 0, "no such file or directory"))
        seen: dict[str, Scenario] = {}
        for file in files:
            scenarios, problems = self.load_file(file)
            catalog.problems.extend(problems)
            for scenario in scenarios:
                first = seen.get(scenario.id)
                if first is not None:
                    catalog.problems.append(
                        Problem(scenario.file, scenario.line,
                                f"duplicate id '{scenario.id}' (first defined at {first.file}:{first.line})")
                    )
                    continue
                seen[scenario.id] = scenario
                catalog.scenarios.append(scenario)
        return catalog

    def load_file(self, path: Path) -> tuple[list[Scenario], list[Problem]]:
        try:
            stat = path.stat()
            key, stamp = path.resolve(), (stat.st_mtime_ns, stat.st_size)
        except OSError:
            return self._load_file(path)
        cached = self._files.get(key)
        if cached is not None and cached[0] == stamp:
            return list(cached[1][0]), list(cached[1][1])
        loaded = self._load_file(path)
        self._files[key] = (stamp, loaded)
        return list(loaded[0]), list(loaded[1])

    def _load_file(self, path: Path) -> tuple[list[Scenario], list[Problem]]:
        name = _display(path)
        text, problem = _read_text(path)
        if problem:
            return [], [problem]
        try:
            docs = load_documents(text)
        except YamlError as exc:
            return [], [Problem(name, exc.line, exc.message)]
        problems: list[Problem] = []
        fragments, fragment_problems = self._fragments_for(path)
        problems.extend(fragment_problems)
        scenarios: list[Scenario] = []
        if not docs:
            problems.append(Problem(name, 1, "empty file: expected at least one scenario"))
        lines = text.splitlines()
        for doc in docs:
            scenario = self._scenario(doc, name, lines, fragments, problems)
            if scenario is not None:
                scenarios.append(scenario)
        seen: dict[str, int] = {}
        for scenario in list(scenarios):
            if scenario.id in seen:
                problems.append(Problem(name, scenario.line,
                                        f"duplicate id '{scenario.id}' (first defined at line {seen[scenario.id]})"))
                scenarios.remove(scenario)
            seen.setdefault(scenario.id, scenario.line)
        return scenarios, sorted(problems, key=lambda p: (p.file != name, p.file, p.line))

    def _fragments_for(self, scenario_path: Path) -> tuple[dict[str, _Fragment], list[Problem]]:
        """Fragments from _fragments.yaml in the scenario's folder and its ancestors (nearest wins)."""
        merged: dict[str, _Fragment] = {}
        problems: list[Problem] = []
        folder = scenario_path.resolve().parent
        chain = [folder, *folder.parents][:12]
        candidates = [directory / FRAGMENTS_FILE for directory in reversed(chain)]
        if self._base_fragments.is_file() and self._base_fragments.resolve() not in candidates:
            candidates.insert(0, self._base_fragments.resolve())
        for candidate in candidates:
            if candidate.is_file():
                found, found_problems = self._fragment_file(candidate)
                merged.update(found)
                problems.extend(found_problems)
        return merged, problems

    def _fragment_file(self, path: Path) -> tuple[dict[str, _Fragment], list[Problem]]:
        if path in self._fragment_files:
            # problems are reported once, with the first scenario file that uses them
            return self._fragment_files[path][0], []
        name = _display(path)
        text, problem = _read_text(path)
        found: dict[str, _Fragment] = {}
        problems: list[Problem] = [problem] if problem else []
        if not problem:
            try:
                docs = load_documents(text)
            except YamlError as exc:
                docs = []
                problems.append(Problem(name, exc.line, exc.message))
            lines = text.splitlines()
            for doc in docs:
                errors = self._schema_problems(self._fragments_validator, doc, name)
                problems.extend(errors)
                if errors:
                    continue
                for key, steps in doc.data["fragments"].items():
                    found[key] = _Fragment(steps, doc, ("fragments", key), name, lines)
        self._fragment_files[path] = (found, problems)
        return found, problems

    # ----- one document ------------------------------------------------------------------------
    def _scenario(self, doc: Document, file: str, lines: list[str], fragments: dict[str, _Fragment],
                  problems: list[Problem]) -> Scenario | None:
        data = doc.data
        if isinstance(data, dict) and "fragments" in data:
            problems.append(Problem(file, doc.line(("fragments",)),
                                    f"fragments belong in a file named {FRAGMENTS_FILE}"))
            return None
        errors = self._schema_problems(self._scenario_validator, doc, file)
        if errors:
            problems.extend(errors)
            return None
        ctx = _Context(file, doc, lines, problems, fragments)
        before = len(problems)
        actions, checked_from = self._top_steps(data["steps"], ctx)
        cut = next((i for i, a in enumerate(actions) if isinstance(a, Disconnect)), None)
        if cut is not None:
            for later in actions[cut + 1:]:
                if not isinstance(later, Sleep | DeliveryCheck):
                    src = getattr(later, "source", None) or getattr(getattr(later, "expect", None), "source", None)
                    problems.append(Problem(file, src.line if src else doc.line(("steps",)),
                                            "after disconnect only wait and delivered steps make sense"))
                    break
        self._check_sent_headers(actions, ctx)
        self._check_stored(data, actions, ctx, steps_ok=len(problems) == before)
        variables = frozenset(
            name
            for action in _walk_writes(actions)
            for payload in action.payloads
            for name in payload.template.variables
        )
        requirements = tuple(data.get("requirements", ()))
        if self._requirement_ids is not None:
            for i, req in enumerate(requirements):
                if req not in self._requirement_ids:
                    ctx.problem(("requirements", i),
                                f"unknown requirement id '{req}' (see conformance/data/requirements.json)")
        rfc = str(doc.scalar_text.get(("rfc",), data["rfc"]))
        section = str(doc.scalar_text.get(("section",), data["section"]))
        if self._quotes is not None:
            for key, message in (("quote", self._quotes.problem(rfc, section, data["quote"])),
                                 ("level", level_problem(data["level"], data["quote"], data.get("level_from")))):
                if message:
                    ctx.problem((key,), message)
        needs = set(data.get("needs", ()))
        if variables & CREDENTIAL_VARIABLES:
            needs.add("credentials")
        if any(isinstance(a, DeliveryCheck) for a in _flatten(actions)):
            needs.add("mailbox")
        if len(problems) > before:
            return None
        return Scenario(
            id=data["id"],
            title=data["title"],
            rfc=rfc,
            section=section,
            level=Level(data["level"]),
            level_from=" ".join(data.get("level_from", "").split()),
            quote=" ".join(data["quote"].split()),
            file=file,
            line=doc.line(()),
            actions=tuple(actions),
            tags=tuple(data.get("tags", ())),
            requires=tuple(k.upper() for k in data.get("requires", ())),
            needs=tuple(sorted(needs)),
            requirements=requirements,
            description=data.get("description", ""),
            timeout=data.get("timeout"),
            variables=variables,
            checked_from=checked_from,
            profiles=tuple(data.get("profiles", ())),
            stored=data.get("stored"),
        )

    @staticmethod
    def _check_stored(data: dict[str, Any], actions: list[Action], ctx: _Context, steps_ok: bool = True) -> None:
        """`stored: checked | unchecked`: where it goes, what `checked` promises, and (once STORED_REQUIRED)
        that every scenario sending message content declares it."""
        stored = data.get("stored")
        if stored is None:
            if STORED_REQUIRED and sends_content(actions):
                ctx.problem(("steps",), "this scenario sends message content (message:, bdat: or DATA via raw:): "
                                        "say whether its stored form is judged, with 'stored: checked' or "
                                        "'stored: unchecked' on the line just before steps:")
            return
        line, steps_line = ctx.doc.key_lines.get(("stored",), 0), ctx.doc.key_lines.get(("steps",), 0)
        if line != steps_line - 1:
            ctx.problem(("stored",), "stored: write it on the line just before steps:")
        if stored == "checked" and steps_ok and not any(isinstance(a, DeliveryCheck) for a in _flatten(actions)):
            ctx.problem(("stored",), "stored: checked needs a delivered step that reads what the server stored "
                                     "(or say stored: unchecked)")

    @staticmethod
    def _check_sent_headers(actions: list[Action], ctx: _Context) -> None:
        """`sent_headers: true` compares with a message this dialogue sent: one must come before it."""
        sent = False
        for action in _flatten(actions):
            if isinstance(action, Write) and any(p.kind in ("message", "bdat") for p in action.payloads):
                sent = True
            if isinstance(action, DeliveryCheck) and action.sent_headers and not sent:
                ctx.problems.append(Problem(action.source.file, action.source.line,
                                            "sent_headers: no message: or bdat: step comes before this delivered "
                                            "step, so there are no sent header fields to compare"))
                return

    def _schema_problems(self, validator: jsonschema.Draft202012Validator, doc: Document,
                         file: str) -> list[Problem]:
        return schema_problems(validator, doc, file, self._defs)

    # ----- steps -------------------------------------------------------------------------------
    def _top_steps(self, steps: list[Any], ctx: _Context) -> tuple[list[Action], int]:
        """The scenario's own steps, and where its checked step starts (C2; docs/scenario-format.md)."""
        actions: list[Action] = []
        starts: list[int] = []
        for i, step in enumerate(steps):
            starts.append(len(actions))
            actions.extend(self._step(step, ("steps", i), ctx))
        marked = [i for i, step in enumerate(steps) if isinstance(step, dict) and step.get("check") is True]
        if marked:
            return actions, starts[marked[0]]
        reading = [i for i, step in enumerate(steps)
                   if isinstance(step, dict) and any(k in step for k in READING) and "use" not in step]
        return actions, starts[reading[-1]] if reading else 0

    def _steps(self, steps: list[Any], path: DocPath, ctx: _Context) -> list[Action]:
        actions: list[Action] = []
        for i, step in enumerate(steps):
            actions.extend(self._step(step, path + (i,), ctx))
        return actions

    def _step(self, step: dict[str, Any], path: DocPath, ctx: _Context) -> list[Action]:
        present = [k for k in ACTIONS if k in step]
        if not present and "expect" in step:
            present = ["expect"]
        if len(present) != 1:
            what = "no action" if not present else "several actions (" + ", ".join(present) + ")"
            ctx.problem(path, f"a step needs exactly one of {', '.join(ACTIONS)} or a lone expect; found {what}")
            return []
        action = present[0]
        extra = sorted(set(step) - {action} - MODIFIERS[action])
        if extra:
            allowed = ", ".join(sorted(MODIFIERS[action])) or "nothing"
            ctx.problem(path + (extra[0],), f"'{extra[0]}' cannot go with '{action}' (it takes: {allowed})")
            return []
        if "check" in step and (ctx.using or ctx.in_session):
            where = "a fragment" if ctx.using else "a second session"
            ctx.problem(path + ("check",), f"'check' goes on the scenario's own steps, not inside {where} "
                        "(mark the use/session step itself)")
            return []
        source = ctx.source(path)
        timeout = step.get("timeout")
        if action in ("send", "raw", "message", "bdat"):
            writes: list[Action] = []
            for n in range(1, step.get("repeat", 1) + 1):
                payload, expect = self._item(step, path, ctx, timeout, n if "repeat" in step else 0)
                if payload is None:
                    return []
                writes.append(Write((payload,), (expect,) if expect else (), source,
                                    step.get("chunks"), step.get("delay", 0.0)))
            return writes
        if action == "pipeline":
            return self._pipeline(step, path, ctx, timeout, source)
        if action == "expect":
            expect = self._expectation(step["expect"], path + ("expect",), ctx, timeout, None, source)
            if expect is not None and "capture" in step:
                expect = self._with_captures(expect, step["capture"], path + ("capture",), ctx)
            return [Read(expect)] if expect else []
        if action == "tls":
            return [TLSHandshake(source)]
        if action == "wait":
            return [Sleep(float(step["wait"]), source)]
        if action == "silence":
            alt = Alternative(silence=True)
            return [Read(Expectation((alt,), source, timeout=float(step["silence"])))]
        if action == "close":
            alt = Alternative(close=step["close"])
            return [Read(Expectation((alt,), source, timeout=timeout))]
        if action == "require":
            return [RequireKeywords(tuple(k.upper() for k in step["require"]), source)]
        if action == "enhanced_codes":
            return [EnhancedCodes(source)]
        if action == "disconnect":
            return [Disconnect(source)]
        if action == "starttls":
            return [StartTLS(step["starttls"], source, timeout)]
        if action == "authenticate":
            return [Authenticate(step["authenticate"], source, timeout)]
        if action == "session":
            if ctx.in_session:
                ctx.problem(path + ("session",), "a second session cannot open another one")
                return []
            inner = _Context(ctx.file, ctx.doc, ctx.lines, ctx.problems, ctx.fragments, ctx.using, True,
                             captured=ctx.captured)
            return [SecondSession(tuple(self._steps(step["session"], path + ("session",), inner)), source)]
        if action == "delivered":
            return self._delivery(step["delivered"], path + ("delivered",), ctx, source)
        return self._use(step, path, ctx)

    def _pipeline(self, step: dict[str, Any], path: DocPath, ctx: _Context, timeout: Any,
                  source: Source) -> list[Action]:
        payloads: list[Payload] = []
        expects: list[Expectation] = []
        for j, item in enumerate(step["pipeline"]):
            item_path = path + ("pipeline", j)
            kinds = [k for k in ("send", "raw", "message", "bdat") if k in item]
            if len(kinds) != 1:
                ctx.problem(item_path, "a pipelined item needs exactly one of send, raw, message, bdat")
                return []
            if kinds[0] != "bdat" and ("last" in item or "size" in item):
                ctx.problem(item_path, "'last' and 'size' go with bdat only")
                return []
            if kinds[0] != "message" and "pad_to" in item:
                ctx.problem(item_path + ("pad_to",), "'pad_to' goes with message only")
                return []
            for n in range(1, item.get("repeat", 1) + 1):
                payload, expect = self._item(item, item_path, ctx, timeout, n if "repeat" in item else 0)
                if payload is None:
                    return []
                payloads.append(payload)
                if expect:
                    expects.append(expect)
        return [Write(tuple(payloads), tuple(expects), source, step.get("chunks"), step.get("delay", 0.0))]

    def _use(self, step: dict[str, Any], path: DocPath, ctx: _Context) -> list[Action]:
        name = step["use"]
        fragment = ctx.fragments.get(name)
        if fragment is None:
            known = ", ".join(sorted(ctx.fragments)) or "none found"
            ctx.problem(path + ("use",), f"unknown fragment '{name}' (known: {known})")
            return []
        if name in ctx.using or len(ctx.using) > 16:
            ctx.problem(path + ("use",), f"fragment '{name}' uses itself: {' → '.join(ctx.using + (name,))}")
            return []
        inner = _Context(fragment.file, fragment.doc, fragment.lines, ctx.problems, ctx.fragments,
                         ctx.using + (name,), ctx.in_session, captured=ctx.captured)
        before = len(ctx.problems)
        actions = self._steps(fragment.steps, fragment.path, inner)
        if len(ctx.problems) > before:
            ctx.problem(path + ("use",), f"fragment '{name}' has errors (see {fragment.file})")
        return actions

    def _delivery(self, spec: dict[str, Any], path: DocPath, ctx: _Context, source: Source) -> list[Action]:
        texts: dict[str, tuple[Template, ...]] = {}
        for key in ("contains", "lacks"):
            out = []
            for i, text in enumerate(spec.get(key, [])):
                try:
                    out.append(parse_template(text, ctx.captured))
                except TemplateError as exc:
                    ctx.problem(path + (key, i), f"{key}: {exc}")
                    return []
            texts[key] = tuple(out)
        patterns: dict[str, tuple[str, ...]] = {}
        for key in ("matches", "not_matches"):
            for i, text in enumerate(spec.get(key, [])):
                try:
                    re.compile(regex_with_values(text, {}))
                except re.error as exc:
                    ctx.problem(path + (key, i), f"{key}: bad regular expression /{text}/: {exc}")
                    return []
            patterns[key] = tuple(spec.get(key, []))
        check = DeliveryCheck(source, spec.get("count", 1) if isinstance(spec.get("count", 1), int) else 0,
                              texts["contains"], texts["lacks"], tuple(spec.get("headers", ())),
                              spec.get("timeout"), patterns["matches"], patterns["not_matches"])
        stored = self._stored_form(spec, path, ctx, check)
        return [stored] if stored is not None else []

    def _stored_form(self, spec: dict[str, Any], path: DocPath, ctx: _Context,
                     check: DeliveryCheck) -> DeliveryCheck | None:
        """The stored-form keys of a delivered step: count as a range, body, sent_headers, rcpt."""
        changes: dict[str, Any] = {}
        if isinstance(spec.get("count"), str):
            low, _, high = spec["count"].partition("-")
            if int(low) > int(high) or int(high) > 100:
                ctx.problem(path + ("count",), f"count: '{spec['count']}' is not a range LOW-HIGH with "
                                               "LOW <= HIGH <= 100")
                return None
            changes.update(count=int(low), count_max=int(high))
        for key in ("body", "rcpt"):
            if key in spec:
                try:
                    changes[key] = parse_template(spec[key], ctx.captured)
                except TemplateError as exc:
                    ctx.problem(path + (key,), f"{key}: {exc}")
                    return None
        if spec.get("sent_headers"):
            changes["sent_headers"] = True
        return replace(check, **changes) if changes else check

    def _item(self, item: dict[str, Any], path: DocPath, ctx: _Context, timeout: float | None,
              index: int) -> tuple[Payload | None, Expectation | None]:
        kind = next(k for k in ("send", "raw", "message", "bdat") if k in item)
        try:
            template = parse_template(item[kind], ctx.captured)
        except TemplateError as exc:
            ctx.problem(path + (kind,), f"{kind}: {exc}")
            return None, None
        if "i" in template.variables and not index:
            ctx.problem(path + (kind,), "{i} is only defined in a step with repeat")
            return None, None
        kind_name = {"send": "line", "raw": "raw", "message": "message", "bdat": "bdat"}[kind]
        pad_to = None
        if "pad_to" in item:
            pad_to = self._pad_to(item["pad_to"], path + ("pad_to",), ctx)
            if pad_to is None:
                return None, None
        payload = Payload(template, kind_name, index, bool(item.get("last", False)), item.get("size"), pad_to)
        if "capture" in item and "expect" not in item:
            ctx.problem(path + ("capture",), "capture reads this step's reply: it needs an expect in the same step")
            return None, None
        expect = None
        if "expect" in item:
            words = item[kind].split() if kind == "send" else []
            verb = words[0].upper() if words else None
            expect = self._expectation(item["expect"], path + ("expect",), ctx, timeout, verb,
                                       ctx.source(path))
            if expect is not None and "capture" in item:
                expect = self._with_captures(expect, item["capture"], path + ("capture",), ctx)
            if expect is None:
                return None, None
        return payload, expect

    def _with_captures(self, expect: Expectation, spec: dict[str, Any], path: DocPath,
                       ctx: _Context) -> Expectation | None:
        """`capture: {NAME: REGEX}`: checked here, so that a bad regex or name is a `file:line` problem."""
        captures: list[tuple[str, str]] = []
        for name, pattern in spec.items():
            if name in VARIABLES or name in ("repeat", "base64"):
                ctx.problem(path + (name,), f"capture name '{name}' would hide the variable {{{name}}}; "
                                            "choose another name")
                return None
            try:
                re.compile(regex_with_values(pattern, {}))
            except re.error as exc:
                ctx.problem(path + (name,), f"capture {name}: bad regular expression {short_value(pattern)}: {exc}")
                return None
            captures.append((name, pattern))
        ctx.captured.update(n for n, _ in captures)  # usable from the next step on
        return replace(expect, captures=tuple(captures))

    def _pad_to(self, value: Any, path: DocPath, ctx: _Context) -> PadTo | None:
        """`pad_to: N`, `{var}`, `{var}+N` or `{var}-N` (the schema has checked the shape)."""
        text = str(value).strip()
        match = PAD_TO.match(text)
        if match is None:
            ctx.problem(path, f"pad_to: {text!r} is not N, {{var}}, {{var}}+N or {{var}}-N")
            return None
        name, sign, number = match.group("var"), match.group("sign"), match.group("n")
        if name is None:
            return PadTo(None, int(match.group("plain")), text)
        if name not in ctx.captured and name not in VARIABLES:
            known = ", ".join(sorted(ctx.captured)) or "none yet"
            ctx.problem(path, f"pad_to: {{{name}}} is not captured by an earlier step (captured: {known})")
            return None
        offset = int(number) if number else 0
        return PadTo(name, -offset if sign == "-" else offset, text)

    def _expectation(self, value: Any, path: DocPath, ctx: _Context, timeout: float | None,
                     command: str | None, source: Source) -> Expectation | None:
        items = value if isinstance(value, list) else [value]
        alternatives: list[Alternative] = []
        for j, item in enumerate(items):
            item_path = path + (j,) if isinstance(value, list) else path
            if not isinstance(item, dict):
                alternatives.append(Alternative(codes=(str(item),)))
                continue
            if ("close" in item or item.get("silence")) and any(
                    k in item for k in ("code", "enhanced", "text", "wire", "wellformed")):
                ctx.problem(item_path,
                            "an alternative is either a reply (code/enhanced/text) or close/silence, not both")
                return None
            if "wire" in item:
                try:
                    re.compile(item["wire"])
                except re.error as exc:
                    ctx.problem(item_path + ("wire",), f"bad regular expression /{item['wire']}/: {exc}")
                    return None
            if "text" in item:
                try:
                    re.compile(regex_with_values(item["text"], {}))
                except re.error as exc:
                    ctx.problem(item_path + ("text",), f"bad regular expression /{item['text']}/: {exc}")
                    return None
            codes = item.get("code", ())
            codes = tuple(str(c) for c in (codes if isinstance(codes, list) else [codes])) if codes != () else ()
            alternatives.append(Alternative(
                codes=codes,
                enhanced=item.get("enhanced"),
                text=item.get("text"),
                close=item.get("close"),
                silence=bool(item.get("silence", False)),
                outcome=Outcome(item.get("outcome", "pass")),
                note=item.get("note"),
                stop=bool(item.get("stop", False)),
                wellformed=bool(item.get("wellformed", False)),
                wire=item.get("wire"),
                outcome_for=tuple((p, Outcome(o)) for p, o in item.get("outcome_for", {}).items()),
            ))
        return Expectation(tuple(alternatives), source, timeout, command)


def _flatten(actions: list[Action] | tuple[Action, ...]) -> list[Action]:
    """Every action, those of second sessions included."""
    out: list[Action] = []
    for action in actions:
        out.extend(_flatten(action.actions) if isinstance(action, SecondSession) else [action])
    return out


RAW_DATA = re.compile(rb"(?:^|\n)DATA\r?\n", re.IGNORECASE)


def sends_content(actions: list[Action] | tuple[Action, ...]) -> bool:
    """Whether the dialogue sends message content: a message: or bdat: item, or DATA followed by raw: bytes
    (a DATA line inside a raw: text, or a send: DATA step and then raw: text)."""
    data_sent = False
    for write in _walk_writes(list(actions)):
        for payload in write.payloads:
            literal = b"".join(p for p in payload.template.parts if isinstance(p, bytes))
            if payload.kind in ("message", "bdat"):
                return True
            if payload.kind == "raw" and (data_sent or RAW_DATA.search(literal)):
                return True
            if payload.kind == "line" and literal.strip().upper() == b"DATA":
                data_sent = True
            elif payload.kind == "line" and data_sent and literal == b".":
                return True  # message lines sent one by one with send:
    return False


def _walk_writes(actions: list[Action]) -> list[Write]:
    return [a for a in _flatten(actions) if isinstance(a, Write)]


def _read_text(path: Path) -> tuple[str, Problem | None]:
    name = _display(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return "", Problem(name, 0, f"cannot read: {exc.strerror}")
    if len(raw) > MAX_FILE_OCTETS:
        return "", Problem(name, 1, f"file larger than {MAX_FILE_OCTETS} octets")
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return "", Problem(name, line, "not UTF-8 text")


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
