"""smtp-conformance: SMTP server conformance suite (run, list, validate, coverage, catalog, merge, compare, diff,
grade, deviations, cleanup).

Exit codes: 0 no FAIL/ERROR; 1 at least one FAIL or ERROR (or NON-STRICT with --strict);
2 usage, configuration or scenario errors (one `file:line: problem` line each, no traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from .loader import Catalog, Loader, default_scenario_paths, load_requirement_ids
from .model import Scenario, sorted_scenarios
from .problems import did_you_mean
from .targets.base import option_kwargs, parameter_changes, parameters, split_labelled

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    pass


def load_catalog(paths: list[str] | None, check_quotes: bool = False, loader: Loader | None = None) -> Catalog:
    chosen = [Path(p) for p in paths] if paths else default_scenario_paths()
    return (loader or Loader(load_requirement_ids(), check_quotes=check_quotes)).load_paths(chosen)


def _print_problems(catalog: Catalog) -> bool:
    for problem in catalog.problems:
        print(problem, file=sys.stderr)
    return bool(catalog.problems)


# ----- run --------------------------------------------------------------------------------------------
def _given_parameters(args: argparse.Namespace, labels: list[str] | None = None) -> dict[str, Any]:
    """The target parameters given on the command line for every target, by name (the last one given);
    `LABEL=VALUE` values naming one of `labels` are for that target only (`_labelled_parameters`)."""
    given: dict[str, Any] = {}
    for p in parameters():
        value = getattr(args, p.name, None) if p.cli else None
        if isinstance(value, list):
            plain = [v for v in value if split_labelled(v, labels or [])[0] is None]
            value = plain[-1] if plain else None
        if value:
            given[p.name] = value
    return given


def _labelled_parameters(args: argparse.Namespace, labels: list[str]) -> list[tuple[str, str, str]]:
    out = []
    for p in parameters():
        for value in getattr(args, p.name, None) or [] if p.cli and not p.flag else []:
            label, rest = split_labelled(value, labels)
            if label is not None:
                out.append((label, p.name, rest))
    return out


def _target_labels(args: argparse.Namespace) -> list[str]:
    from .targets import TargetParams, load_targets_file, parse_target
    from .targets.base import TargetError

    labels = []
    for spec in args.target or ([] if args.targets else ["builtin"]):
        with contextlib.suppress(TargetError):
            labels.append(parse_target(spec, TargetParams()).label)
    if args.targets:
        labels += [t.label for t in load_targets_file(Path(args.targets))[0]]
    return labels


# parameters whose values may contain '=' (addresses: SRS, BATV): a LABEL= naming no target is their value
_MAY_HOLD_EQUALS = ("sender", "rcpt", "foreign_rcpt", "auth")


def _parameter_problems(args: argparse.Namespace) -> list[str]:
    import re

    labels = _target_labels(args)
    given = _given_parameters(args, labels)
    problems = []
    for p in parameters():
        value = str(given.get(p.name, ""))
        match = re.match(r"^([A-Za-z0-9_.-]+)=", value)
        if match and p.name not in _MAY_HOLD_EQUALS:  # LABEL=VALUE naming no target
            problems.append(f"--{p.option} {value}: no target is labelled {match.group(1)!r}"
                            f"{_did_you_mean(match.group(1), labels)} (labels: {', '.join(labels)})")
            given.pop(p.name)
    _, wrong = parameter_changes(given)
    problems += [f"--{key.replace('_', '-')}: {message}" for key, message in wrong]
    for p in parameters():
        if p.choices and p.name in given and given[p.name] not in p.choices:
            problems.append(f"--{p.option} {given[p.name]}: expected one of {', '.join(p.choices)}")
    for label, name, value in _labelled_parameters(args, labels):
        _, wrong = parameter_changes({name: value})
        problems += [f"--{name.replace('_', '-')} {label}=…: {message}" for _, message in wrong]
    return problems


def run_problems(args: argparse.Namespace, catalog: Catalog) -> list[str]:
    """Everything wrong with a `run` command line, found before anything runs or is written."""
    from .targets import TargetParams, load_targets_file, parse_target
    from .targets.base import TargetError

    problems = [str(p) for p in catalog.problems]
    for spec in args.target:
        try:
            parse_target(spec, TargetParams())
        except TargetError as exc:
            problems.append(f"--target: {exc}")
    if args.targets:
        _, file_problems = load_targets_file(Path(args.targets))
        problems.extend(str(p) for p in file_problems)
    problems += _parameter_problems(args)
    if args.probe_cap:
        from .dialogue import parse_octets

        try:
            parse_octets(args.probe_cap)
        except ValueError as exc:
            problems.append(f"--probe-cap: {exc}")
    if not catalog.problems:
        problems += selection_problems(catalog.scenarios, args.tag or [], args.k)
    problems += output_problems({"--json": args.json, "--html": args.html, "--junit": args.junit})
    return problems


def cmd_run(args: argparse.Namespace) -> int:
    import pytest

    loader = Loader(load_requirement_ids())
    catalog = load_catalog(args.scenarios, loader=loader)
    problems = run_problems(args, catalog)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    paths = [str(p) for p in (args.scenarios or default_scenario_paths())]
    # --assert=plain: scenario items have no asserts to rewrite, and this module already imported the plugin
    pytest_args = ["-p", "no:cacheprovider", "-q", "--assert=plain", "-o", "console_output_style=classic", *paths]
    # scenario items print nothing, log nothing and warn nothing; capturing around each of thousands of items
    # costs more CPU than the dialogue itself (targets' output goes to their own files)
    pytest_args += ["--capture=no", "-p", "no:logging", "-p", "no:warnings"]
    # nor do they raise in threads or in __del__; these two plugins each end the session with a full
    # garbage collection, over every item of the run (0.1 s each in a run of 30 targets)
    pytest_args += ["-p", "no:unraisableexception", "-p", "no:threadexception"]
    # and use no subtests, unittest classes or tmp_path: three hooks fewer on every item's reports
    pytest_args += ["-p", "no:subtests", "-p", "no:unittest", "-p", "no:tmpdir"]
    for path in paths:
        pytest_args += ["--smtp-scenarios", path]  # collected even when not in a folder named 'scenarios'
    for spec in args.target:
        pytest_args += ["--smtp-target", spec]
    if args.targets:
        pytest_args += ["--smtp-targets", args.targets]
    labels = _target_labels(args)
    for label, name, value in _labelled_parameters(args, labels):
        pytest_args += ["--smtp-target-param", f"{label}:{name}={value}"]
    for p in parameters():  # the --smtp-* twin of every target parameter given
        value = _given_parameters(args, labels).get(p.name)
        if value is True:
            pytest_args.append(f"--smtp-{p.option}")
        elif value is not None and value != option_kwargs(p).get("default"):
            pytest_args += [f"--smtp-{p.option}", str(value)]
    if args.probe_cap:
        pytest_args += ["--smtp-probe-cap", args.probe_cap]
    pytest_args += ["--smtp-timeout", str(args.timeout), "--smtp-concurrency", str(args.concurrency)]
    if args.strict:
        pytest_args.append("--smtp-strict")
    if args.json:
        pytest_args += ["--smtp-json", args.json]
    if args.html:
        pytest_args += ["--smtp-html", args.html]
    if args.junit:
        pytest_args += ["--smtp-junit", args.junit, "--smtp-junit-non-strict", args.junit_non_strict]
    if args.markdown:
        pytest_args += ["--smtp-markdown", args.markdown]
    if args.sarif:
        pytest_args += ["--smtp-sarif", args.sarif]
    if args.github:
        pytest_args.append("--smtp-github")
    if args.k:
        pytest_args += ["-k", args.k]
    if args.tag:
        pytest_args += ["-m", " or ".join(args.tag)]
    if args.workers:
        pytest_args += ["-n", str(args.workers)]
    if args.fail_fast:
        pytest_args.append("-x")
    pytest_args += ["--smtp-progress", "off" if args.quiet else "auto"]
    if args.shard:
        pytest_args += ["--smtp-shard", args.shard]
    if args.baseline:
        pytest_args += ["--smtp-baseline", args.baseline]
    if args.update_baseline:
        pytest_args.append("--smtp-update-baseline")
    pytest_args += args.pytest_args
    if args.verbose:
        print("pytest " + shlex.join(pytest_args), file=sys.stderr)
    from .plugin import LoaderHandoff

    code = int(pytest.main(pytest_args, plugins=[LoaderHandoff(loader)]))  # the catalog is read once
    if code == 5:
        print("no scenarios selected (check -k / --tag)", file=sys.stderr)
        return EXIT_USAGE
    return {0: EXIT_OK, 1: EXIT_FAILURES, EXIT_INTERRUPTED: EXIT_INTERRUPTED}.get(code, EXIT_USAGE)


def output_problems(paths: dict[str, str | None]) -> list[str]:
    """Report paths that cannot be written: named before the run, so that it never ends in a traceback."""
    from .results import unwritable

    problems = []
    for option, path in paths.items():
        why = unwritable(Path(path)) if path else None
        if why:
            problems.append(f"{option}: {why}")
    return problems


def _did_you_mean(word: str, choices: list[str]) -> str:
    # ids and tags are long and alike: a looser match than for keys (problems.did_you_mean's default)
    return did_you_mean(word, choices, n=3, cutoff=0.5)


def selection_problems(scenarios: list[Scenario], tags: list[str], keyword: str | None) -> list[str]:
    """A selection that can select nothing is a mistake to name before anything runs (or is overwritten)."""
    known = sorted({t for s in scenarios for t in s.tags})
    problems = [f"--tag {tag}: no scenario has this tag{_did_you_mean(tag, known)} (list them: list --tags)"
                for tag in tags if tag not in known]
    # a plain word for -k is matched by pytest as a case-insensitive substring of the test names
    if keyword and keyword.replace("-", "").replace(".", "").replace("_", "").isalnum():
        chosen = [s for s in scenarios if not tags or set(tags) & set(s.tags)]
        ids = [s.id for s in chosen]
        # pytest also matches the file's and folders' names and the markers (tags)
        names = ids + [part for s in chosen for part in (*Path(s.file).parts[-2:], *s.tags)]
        if not any(keyword.lower() in n.lower() for n in names):
            problems.append(f"-k {keyword}: selects no scenario{_did_you_mean(keyword, ids)}")
    return problems


# ----- list / validate ----------------------------------------------------------------------------------
def scenario_summary(s: Scenario) -> dict[str, Any]:
    return {"id": s.id, "title": s.title, "rfc": s.rfc, "section": s.section, "level": s.level.value,
            "level_from": s.level_from or None,
            "tags": list(s.tags), "requires": list(s.requires), "requirements": list(s.requirements),
            "profiles": list(s.profiles),
            "file": s.file, "line": s.line, "stored": s.stored}


def cmd_list(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.scenarios)
    if _print_problems(catalog):
        return EXIT_USAGE
    scenarios = sorted_scenarios(catalog.scenarios)
    if args.tag:
        scenarios = [s for s in scenarios if set(args.tag) & set(s.tags)]
    if args.stored:
        scenarios = [s for s in scenarios if s.stored == args.stored]
    if args.tags:
        counts: dict[str, int] = {}
        for s in scenarios:
            for tag in s.tags:
                counts[tag] = counts.get(tag, 0) + 1
        if args.format == "json":
            print(json.dumps(counts, indent=1, sort_keys=True))
        else:
            for tag, n in sorted(counts.items()):
                print(f"{tag:<24} {n}")
        return EXIT_OK
    if args.format == "json":
        print(json.dumps([scenario_summary(s) for s in scenarios], indent=1))
        return EXIT_OK
    width = max((len(s.id) for s in scenarios), default=10)
    print(f"{'ID':<{width}}  {'LEVEL':<10}  {'RFC':<15}  TITLE")
    for s in scenarios:
        print(f"{s.id:<{width}}  {s.level.value:<10}  {'RFC ' + s.rfc + ' §' + s.section:<15}  {s.title}")
    by_rfc: dict[str, int] = {}
    for s in scenarios:
        by_rfc[s.rfc] = by_rfc.get(s.rfc, 0) + 1
    print(f"\n{len(scenarios)} scenarios (" + ", ".join(f"RFC {r}: {n}" for r, n in sorted(by_rfc.items())) + ")")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    catalog = load_catalog((args.paths or []) + (args.scenarios or []), check_quotes=True)
    if _print_problems(catalog):
        print(f"{len(catalog.problems)} problem(s)", file=sys.stderr)
        return EXIT_USAGE
    print(f"{len(catalog.scenarios)} scenarios OK")
    return EXIT_OK


def cmd_coverage(args: argparse.Namespace) -> int:
    from .catalog import coverage, format_coverage, load_requirements

    catalog = load_catalog(args.scenarios)
    if _print_problems(catalog):
        return EXIT_USAGE
    cov = coverage(catalog.scenarios, load_requirements())
    if args.format == "json":
        print(json.dumps(cov.as_json(), indent=1))
    else:
        print(format_coverage(cov))
    return EXIT_OK


def cmd_catalog(args: argparse.Namespace) -> int:
    from .catalog import load_requirements, write_catalog

    catalog = load_catalog(args.scenarios)
    if _print_problems(catalog):
        return EXIT_USAGE
    written = write_catalog(catalog.scenarios, load_requirements(), Path(args.out), Path.cwd())
    print(f"wrote {len(written)} pages to {args.out}")
    return EXIT_OK


def cmd_deviations(args: argparse.Namespace) -> int:
    from .catalog import write_deviations

    catalog = load_catalog(args.scenarios)
    if _print_problems(catalog):
        return EXIT_USAGE
    write_deviations(catalog.scenarios, Path(args.baselines), Path(args.out))
    print(f"wrote {args.out}")
    return EXIT_OK


def _read_documents(paths: list[str]) -> list[dict[str, Any]]:
    docs = []
    for path in paths:
        try:
            docs.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: not a results document: {exc}") from None
        if not isinstance(docs[-1], dict) or "results" not in docs[-1]:
            raise UsageError(f"{path}: not a results document (no 'results')")
    return docs


def cmd_merge(args: argparse.Namespace) -> int:
    """Shards of one run, or runs against different targets → one document (and one report)."""
    from .merge import MergeError, merge
    from .results import write_json

    try:
        document = merge(_read_documents(args.files))
    except MergeError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        write_json(document, Path(args.json))
    if args.html:
        from .report.html import write_html

        write_html(document, Path(args.html))
    _report_outputs(document, args)
    counts = document["summary"]["outcomes"]
    print(f"merged {len(args.files)} document(s): {document['summary']['total']} results, "
          + ", ".join(f"{n} {o}" for o, n in counts.items() if n)
          + "".join(f"; wrote {p}" for p in (args.json, args.html) if p))
    return EXIT_FAILURES if counts.get("fail") or counts.get("error") else EXIT_OK


def _report_outputs(document: dict[str, Any], args: argparse.Namespace) -> None:
    """--markdown / --sarif / --github for documents read back (merge, compare), as a run writes them."""
    import os

    from .report.github import annotations, github_enabled
    from .report.markdown import append_markdown, write_markdown
    from .report.sarif import write_sarif
    from .report.terminal import summary_lines, use_color

    if args.markdown:
        write_markdown(document, Path(args.markdown))
    if args.sarif:
        write_sarif(document, Path(args.sarif))
    for line in summary_lines(document, color=use_color(sys.stdout)):
        print(line)
    if github_enabled(args.github):
        for line in annotations(document):
            print(line)
        if os.environ.get("GITHUB_STEP_SUMMARY"):
            append_markdown(document, Path(os.environ["GITHUB_STEP_SUMMARY"]))


def cmd_cleanup(args: argparse.Namespace) -> int:
    """Remove containers an interrupted run left behind (they carry the org.smtp-conformance label)."""
    from .targets.base import TargetError
    from .targets.container import cleanup_leftovers

    try:
        removed = cleanup_leftovers(args.session)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    print(f"removed {len(removed)} container(s)" + "".join(f"\n  {cid[:12]}" for cid in removed))
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from .merge import diff, format_diff, is_regression

    old, new = _read_documents([args.old, args.new])
    changes = diff(old, new)
    if args.format == "json":
        print(json.dumps(changes, indent=1))
    else:
        print(format_diff(changes))
    return EXIT_FAILURES if args.fail_on_regression and any(is_regression(c) for c in changes) else EXIT_OK


def cmd_grade(args: argparse.Namespace) -> int:
    """Grade a class (docs/grading.md): 0 grades written, 1 run incomplete, 2 rubric/students/scenario errors."""
    from .grading import grade

    return grade(Path(args.rubric), Path(args.targets), Path(args.out), scenarios=args.scenarios,
                 concurrency=args.concurrency, timeout=args.timeout, isolation=args.isolation,
                 uid_base=args.uid_base, verbose=args.verbose, quiet=args.quiet)


# ----- argument parsing ---------------------------------------------------------------------------------
EXIT_CODES = ("exit codes: 0 no FAIL or ERROR; 1 at least one FAIL or ERROR (or NON-STRICT with --strict); "
              "2 usage, configuration or scenario error; 130 interrupted")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("smtp-conformance")
    except PackageNotFoundError:
        return "unknown"


def _add_run_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="run the scenarios against targets (wraps pytest)", epilog=EXIT_CODES,
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    run.add_argument("--target", action="append", default=[], metavar="TARGET",
                     help="builtin | HOST:PORT | cmd:COMMAND-WITH-{port} | image:NAME | preset:NAME, "
                          "optionally LABEL=TARGET; repeatable (default: builtin)")
    run.add_argument("--targets", metavar="FILE", help="YAML file listing targets with parameters")
    run.add_argument("--scenarios", action="append", metavar="PATH", help="scenario files or folders")
    run.add_argument("--json", default="reports/results.json", help="results JSON (default %(default)s)")
    run.add_argument("--html", default="reports/index.html", help="HTML report (default %(default)s)")
    run.add_argument("--junit", default="reports/junit.xml", help="JUnit XML (default %(default)s)")
    run.add_argument("--junit-non-strict", choices=["skipped", "failure", "pass"], default="skipped",
                     help="NON-STRICT in the JUnit file: skipped with the RFC sentence and transcript (default), "
                          "failure (the exit code still follows --strict), or pass")
    run.add_argument("--markdown", metavar="PATH", help="findings-first Markdown summary")
    run.add_argument("--sarif", metavar="PATH", help="FAIL / NON-STRICT findings as SARIF 2.1.0 (code scanning)")
    run.add_argument("--github", action="store_true", help="GitHub Actions annotations and step summary "
                     "(automatic when GITHUB_ACTIONS=true)")
    run.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each reply")
    run.add_argument("--concurrency", type=int, default=8, help="dialogues at once per process")
    run.add_argument("-n", "--workers", type=int, help="pytest-xdist worker processes")
    run.add_argument("-k", metavar="EXPR", help="select scenarios by id/target expression (pytest -k)")
    run.add_argument("--tag", action="append", help="only scenarios with this tag (repeatable)")
    run.add_argument("--strict", action="store_true", help="NON-STRICT results fail the run too")
    run.add_argument("-x", "--fail-fast", action="store_true", help="stop at the first FAIL or ERROR (the "
                     "report then holds what ran)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress lines while the run goes (default: "
                     "a live line per target on a terminal, a line every few seconds otherwise)")
    run.add_argument("--shard", metavar="I/N", help="run the I-th of N shards; `merge` their JSON files")
    run.add_argument("--baseline", metavar="PATH", help="expected deviations of the --target servers")
    run.add_argument("--update-baseline", action="store_true", help="rewrite the baseline from this run")
    for p in parameters():  # target parameters: declared once, on TargetParams
        if p.cli and p.flag:
            run.add_argument(f"--{p.option}", **option_kwargs(p))
        elif p.cli:  # repeatable: LABEL=VALUE sets it for the target so labelled only
            kwargs = option_kwargs(p)
            run.add_argument(f"--{p.option}", action="append", metavar="[LABEL=]" + p.name.upper(),
                             help=kwargs["help"] + "; LABEL=VALUE: for that target only (repeatable)"
                             + (f"; one of {', '.join(kwargs['choices'])}" if "choices" in kwargs else ""))
    run.add_argument("--probe-cap", metavar="OCTETS", help="largest message a boundary scenario may send (pad_to "
                     "a SIZE limit); above it the scenario is INFO 'limit too large to probe' (default 50M = 50000000 "
                     "octets; 50MiB = 52428800)")
    run.add_argument("-v", "--verbose", action="store_true", help="print the pytest command line")
    run.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments")
    run.set_defaults(func=cmd_run)


def _add_catalog_parsers(sub: Any) -> None:
    lst = sub.add_parser("list", help="the catalog: id, level, RFC section, title")
    lst.add_argument("--format", choices=["text", "json"], default="text")
    lst.add_argument("--tag", action="append", help="only scenarios with this tag (repeatable)")
    lst.add_argument("--tags", action="store_true", help="list the tags and how many scenarios carry each")
    lst.add_argument("--stored", nargs="?", const="checked", choices=["checked", "unchecked"],
                     help="only scenarios whose stored form is checked (the default) or unchecked")
    lst.add_argument("--scenarios", action="append", metavar="PATH")
    lst.set_defaults(func=cmd_list)

    val = sub.add_parser("validate", help="check scenario files; one file:line: problem per mistake")
    val.add_argument("paths", nargs="*", help="files or folders (default: scenarios/)")
    val.add_argument("--scenarios", action="append", metavar="PATH", help="files or folders, like PATHS")
    val.set_defaults(func=cmd_validate)

    cov = sub.add_parser("coverage", help="requirement sentences covered by scenarios, per RFC and level")
    cov.add_argument("--format", choices=["text", "json"], default="text")
    cov.add_argument("--scenarios", action="append", metavar="PATH")
    cov.set_defaults(func=cmd_coverage)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smtp-conformance", description=" ".join(__doc__.split("\n\n")[0].split()),
                                     epilog=EXIT_CODES)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    _add_run_parser(sub)
    _add_catalog_parsers(sub)
    cat = sub.add_parser("catalog", help="generate the browsable markdown catalog (docs/catalog)")
    cat.add_argument("--out", default="docs/catalog")
    cat.add_argument("--scenarios", action="append", metavar="PATH")
    cat.set_defaults(func=cmd_catalog)

    mrg = sub.add_parser("merge", help="merge results JSON files (shards, or runs of different targets)")
    mrg.add_argument("files", nargs="+", metavar="RESULTS.json")
    mrg.add_argument("--json", default="reports/results.json")
    mrg.add_argument("--html", default="reports/index.html")
    mrg.add_argument("--markdown", metavar="PATH", help="findings-first Markdown summary")
    mrg.add_argument("--sarif", metavar="PATH", help="FAIL / NON-STRICT findings as SARIF 2.1.0")
    mrg.add_argument("--github", action="store_true", help="GitHub Actions annotations and step summary "
                        "(automatic when GITHUB_ACTIONS=true)")
    mrg.set_defaults(func=cmd_merge)

    cmp_ = sub.add_parser("compare", help="servers × scenarios matrix from results of separate runs "
                                          "(to run several targets at once: run --target A --target B)")
    cmp_.add_argument("files", nargs="+", metavar="RESULTS.json")
    cmp_.add_argument("--json", default="")
    cmp_.add_argument("--html", default="reports/compare.html")
    cmp_.add_argument("--markdown", metavar="PATH", help="findings-first Markdown summary")
    cmp_.add_argument("--sarif", metavar="PATH", help="FAIL / NON-STRICT findings as SARIF 2.1.0")
    cmp_.add_argument("--github", action="store_true", help="GitHub Actions annotations and step summary "
                        "(automatic when GITHUB_ACTIONS=true)")
    cmp_.set_defaults(func=cmd_merge)

    dif = sub.add_parser("diff", help="what changed between two runs")
    dif.add_argument("old", metavar="OLD.json")
    dif.add_argument("new", metavar="NEW.json")
    dif.add_argument("--format", choices=["text", "json"], default="text")
    dif.add_argument("--fail-on-regression", action="store_true", help="exit 1 if an outcome got worse")
    dif.set_defaults(func=cmd_diff)

    cln = sub.add_parser("cleanup", help="remove leftover containers of interrupted runs")
    cln.add_argument("--session", help="only this run's containers (SMTP_CONFORMANCE_SESSION)")
    cln.set_defaults(func=cmd_cleanup)

    dev = sub.add_parser("deviations", help="generate docs/known-deviations.md from baselines/")
    dev.add_argument("--baselines", default="baselines")
    dev.add_argument("--out", default="docs/known-deviations.md")
    dev.add_argument("--scenarios", action="append", metavar="PATH")
    dev.set_defaults(func=cmd_deviations)

    grd = sub.add_parser("grade", help="grade students' servers against a rubric (docs/grading.md)")
    grd.add_argument("--rubric", required=True, metavar="RUBRIC.yaml", help="categories, weights, credit, hidden")
    grd.add_argument("--targets", required=True, metavar="STUDENTS.yaml", help="targets file, one labelled entry "
                     "per student")
    grd.add_argument("--out", default="reports/grading", help="report folder (default %(default)s)")
    grd.add_argument("--scenarios", action="append", metavar="PATH", help="scenario files or folders (default: "
                     "the rubric's `scenarios`, else the catalog)")
    grd.add_argument("--concurrency", type=int, default=4, help="dialogues at once per student, unless the "
                     "students file says otherwise (default %(default)s)")
    grd.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each reply")
    grd.add_argument("--isolation", choices=["auto", "uid", "none"], default="auto", help="uid: each student "
                     "command under its own unprivileged uid with resource limits (needs root); auto: uid when "
                     "possible")
    grd.add_argument("--uid-base", type=int, metavar="UID", help="first of the uids given to students "
                     "(default: a free random block)")
    grd.add_argument("-v", "--verbose", action="store_true", help="print the pytest command line and its output")
    grd.add_argument("-q", "--quiet", action="store_true", help="no progress lines (default: one per student every "
                     "few seconds while the class runs)")
    grd.set_defaults(func=cmd_grade)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.func(args))
    except UsageError as exc:
        print(f"smtp-conformance: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `smtp-conformance list | head`: the reader left; say nothing more (and not on flush at exit)
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
