"""pytest plugin: scenario files become test items; each item is one scenario against one target.

Registered through the `pytest11` entry point, so `pytest scenarios/ --smtp-target HOST:PORT` works in
any project that installed smtp-conformance.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import os
import shlex
import signal
import sys
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest

from .baseline import Baseline, baseline_yaml, compare, load_baseline
from .dialogue import PROBE_CAP, Settings, parse_octets
from .failure import format_failure
from .loader import Loader, is_scenario_file, load_requirement_ids
from .model import Outcome, Scenario
from .problems import Problem
from .progress import Progress
from .protocol import lean_applies, run_item
from .results import Spool, build_document, fails_run, missing_parameter_lines, unwritable
from .runner import Runner
from .targets import Target, TargetError, TargetParams, load_targets_file, parse_target
from .targets.base import option_kwargs, parameter_changes, parameters, per_target_changes

STATE = pytest.StashKey["SmtpSession"]()
GC_YOUNG_THRESHOLD = 20_000  # allocations between collections of the young generation (Python: 700)
FAILURE_BUDGET = 256 * 1024  # characters of failure blocks in the terminal; later failures get one line each
STATUS = {
    # outcome -> (category, short letter, word) for pytest's terminal
    "pass": ("passed", ".", "PASS"),
    "info": ("info", "i", "INFO"),
    "non-strict": ("non-strict", "n", "NON-STRICT"),
    "unsupported": ("unsupported", "u", "UNSUPPORTED"),
    "skipped": ("skipped", "s", "SKIPPED"),
    "fail": ("failed", "F", "FAIL"),
    "error": ("error", "E", "ERROR"),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("smtp-conformance", "SMTP conformance scenarios")
    group.addoption("--smtp-target", action="append", default=[], metavar="TARGET",
                    help="server under test: builtin, HOST:PORT, cmd:COMMAND-WITH-{port}, image:NAME; "
                         "optionally LABEL=TARGET; repeatable (default: builtin)")
    group.addoption("--smtp-targets", metavar="FILE", help="YAML file listing targets with their parameters")
    group.addoption("--smtp-concurrency", type=int, default=8, metavar="N",
                    help="dialogues run at once per process (default 8)")
    group.addoption("--smtp-timeout", type=float, default=10.0, metavar="SECONDS",
                    help="how long to wait for each reply (default 10)")
    group.addoption("--smtp-strict", action="store_true", help="NON-STRICT (a SHOULD broken) fails the run too")
    group.addoption("--smtp-json", metavar="PATH", help="write results JSON here")
    group.addoption("--smtp-html", metavar="PATH", help="write the HTML report here")
    for p in parameters():  # target parameters: declared once, on TargetParams
        if p.cli:
            group.addoption(f"--smtp-{p.option}", **option_kwargs(p))
    group.addoption("--smtp-keep-unusable", action="store_true",
                    help="a target that cannot be started or reached still gets its scenarios, as ERRORs (grading: "
                         "every student gets a row), instead of being named once and left out")
    group.addoption("--smtp-target-param", action="append", default=[], metavar="LABEL:NAME=VALUE",
                    help="a target parameter for the target so labelled only (e.g. mailhog:mailbox=mailhog:URL); "
                         "repeatable")
    group.addoption("--smtp-scenarios", action="append", default=[], metavar="PATH",
                    help="also collect the YAML files under PATH as scenarios (folders named 'scenarios' always are)")
    group.addoption("--smtp-transcripts", choices=["all", "non-pass"], default="all",
                    help="non-pass: drop the transcripts of PASS, UNSUPPORTED and SKIPPED results (large runs, "
                         "less memory and smaller JSON)")
    group.addoption("--smtp-progress", choices=["off", "auto", "live", "lines"], default="off",
                    help="progress while the run goes: live (a line per target redrawn in place), lines (a line "
                         "per target every few seconds, for CI), auto (live on a terminal, else lines); "
                         "replaces pytest's dots")
    group.addoption("--smtp-shard", metavar="I/N", help="run only the I-th of N shards (1-based); merge the JSONs")
    group.addoption("--smtp-baseline", metavar="PATH",
                    help="expected deviations of the --smtp-target servers: baselined results do not fail the run; "
                         "new and fixed deviations are reported")
    group.addoption("--smtp-probe-cap", type=parse_octets, default=PROBE_CAP, metavar="OCTETS",
                    help="scenarios that would send a message larger than this (pad_to: a server's SIZE limit) are "
                         "INFO 'limit too large to probe' (default 50M = 50000000; K, M, G: powers of 1000, "
                         "KiB, MiB, GiB: of 1024)")
    group.addoption("--smtp-update-baseline", action="store_true",
                    help="rewrite each target's baseline file from this run (keeps existing reasons)")
    group.addoption("--smtp-github", action="store_true",
                    help="GitHub Actions: ::error / ::warning annotations at the scenario line of each FAIL / "
                         "NON-STRICT, and the Markdown summary appended to $GITHUB_STEP_SUMMARY "
                         "(automatic when GITHUB_ACTIONS=true)")
    group.addoption("--smtp-markdown", metavar="PATH", help="write the findings-first Markdown summary here")
    group.addoption("--smtp-sarif", metavar="PATH", help="write FAIL / NON-STRICT findings as SARIF 2.1.0 here")
    group.addoption("--smtp-junit", metavar="PATH",
                    help="write JUnit XML here, from the results (what the command line's --junit does); "
                         "pytest's --junitxml works too, at the cost of the memory its plugin keeps")
    group.addoption("--smtp-junit-non-strict", choices=["skipped", "failure", "pass"], default="skipped",
                    help="how NON-STRICT results appear in --smtp-junit and --junitxml: skipped with the RFC "
                         "sentence and transcript (default), failure (the exit code still follows --smtp-strict), "
                         "or pass")


class LoaderHandoff:
    """Handed to pytest.main by the command line: the Loader that already read the catalog, so that
    collection takes its scenarios instead of loading every file a second time."""

    def __init__(self, loader: Loader) -> None:
        self.loader = loader


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def cli_params(config: pytest.Config) -> TargetParams:
    given = {p.name: config.getoption(f"smtp_{p.name}") for p in parameters() if p.cli}
    changes, wrong = parameter_changes({k: v for k, v in given.items() if v})
    if wrong:
        raise ConfigError([f"--smtp-{key.replace('_', '-')}: {message}" for key, message in wrong])
    return TargetParams().with_(**changes)


class SmtpSession:
    """Everything the plugin keeps for one pytest session (no module-level state)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.strict: bool = config.getoption("smtp_strict")
        given = [p.loader for p in config.pluginmanager.get_plugins() if isinstance(p, LoaderHandoff)]
        self.loader = given[0] if given else Loader(load_requirement_ids())
        self.targets: list[Target] = []
        self.repro: dict[str, str] = {}
        self.problems: list[str] = []
        self.runner: Runner | None = None
        self.results: list[dict[str, Any]] = []  # slim copies: the full entries are in the spool, on disk
        self.spool = Spool()
        self.submitted: dict[tuple[str, str], ScenarioItem] = {}  # (scenario id, target) -> its item
        self.failure_chars = FAILURE_BUDGET  # what the terminal's failure blocks may still print
        self.identities: dict[str, dict[str, Any]] = {}
        self.started = dt.datetime.now(dt.UTC)
        self.registered_marks: set[str] = set()
        self.baselines: dict[str, Baseline] = {}
        self.shard: tuple[int, int] | None = None
        self.progress: Progress | None = None
        self.lean = False  # every item a scenario item: the lean runtest protocol (protocol.py)
        self.terminal: Any = None  # pytest's terminal reporter (its stats), once the run starts
        self.unusable: dict[str, str] = {}  # label -> why it could not be started or reached
        self.nothing_ran = False  # no target usable: the last reports stay as they were
        self.interrupted = False  # Ctrl-C or SIGTERM (not pytest's "errors during collection")
        self.problems.extend(_output_problems(config))
        try:
            self._build_targets()
            self._load_baselines()
            self.shard = _parse_shard(config.getoption("smtp_shard"))
        except ConfigError as exc:
            self.problems.extend(exc.problems)

    def _load_baselines(self) -> None:
        option = self.config.getoption("smtp_baseline")
        problems = []
        for target in self.targets:
            path = target.baseline or (option if self.repro[target.label].startswith("--smtp-target") else None)
            if not path:
                continue
            target.baseline = path
            if not Path(path).exists():
                if self.config.getoption("smtp_update_baseline"):
                    self.baselines[target.label] = Baseline(Path(path).stem)
                    continue
                problems.append(f"baseline {path}: no such file or folder")
                continue
            baseline = load_baseline(Path(path))
            problems.extend(str(p) for p in baseline.problems)
            self.baselines[target.label] = baseline
        if problems:
            raise ConfigError(problems)

    def _build_targets(self) -> None:
        opt = self.config.getoption
        params = cli_params(self.config)
        specs: list[str] = opt("smtp_target")
        path = opt("smtp_targets")
        problems: list[str] = []
        extra = _param_args(self.config)
        for spec in specs:
            try:
                target = parse_target(spec, params)
            except TargetError as exc:
                problems.append(f"--smtp-target: {exc}")
                continue
            self.targets.append(target)
            self.repro[target.label] = f"--smtp-target {shlex.quote(spec)}{extra}"
        if path:
            found, file_problems = load_targets_file(Path(path), params)
            problems.extend(str(p) for p in file_problems)
            for target in found:
                self.targets.append(target)
                self.repro[target.label] = f"--smtp-targets {shlex.quote(str(Path(path).resolve()))}"
        if not specs and not path:
            target = parse_target("builtin", params)
            self.targets.append(target)
            self.repro[target.label] = "--smtp-target builtin" + extra
        problems += self._per_target_params()
        labels = [t.label for t in self.targets]
        for label in sorted({x for x in labels if labels.count(x) > 1}):
            problems.append(f"two targets share the label '{label}': give them names with LABEL=TARGET")
        if problems:
            raise ConfigError(problems)

    def _per_target_params(self) -> list[str]:
        given, problems = [], []
        for text in self.config.getoption("smtp_target_param"):
            label, _, rest = text.partition(":")
            name, sep, value = rest.partition("=")
            if not sep:
                problems.append(f"--smtp-target-param {text!r}: expected LABEL:NAME=VALUE")
                continue
            given.append((label, name.replace("-", "_"), value))
            if label in self.repro:
                self.repro[label] += f" --smtp-target-param {shlex.quote(text)}"
        return problems + per_target_changes(given, self.targets)

    def get_runner(self) -> Runner:
        if self.runner is None:
            opt = self.config.getoption
            settings = Settings(timeout=opt("smtp_timeout"), probe_cap=opt("smtp_probe_cap"))
            # results go to the spool as they finish, except on an xdist worker: the controller spools them
            sink = None if _is_worker(self.config) else self._spool_finished
            self.runner = Runner(self.targets, settings, opt("smtp_concurrency"), sink)
        return self.runner

    def settle(self, result: dict[str, Any], item: ScenarioItem) -> dict[str, Any]:
        """What this session adds to a result of this item: its node id, Reproduce line, whether a baseline
        expects it, and whether its transcript is kept."""
        changes: dict[str, Any] = {"nodeid": item.nodeid,
                                   "reproduce": reproduce_line(item, self.repro.get(item.target_label, ""))}
        outcome = result["outcome"]
        if self.config.getoption("smtp_transcripts") == "non-pass" and outcome in ("pass", "unsupported", "skipped"):
            changes["transcript"] = []
        baseline = self.baselines.get(item.target_label)
        expected = baseline.deviations.get(result["id"]) if baseline else None
        if expected is not None and expected.outcome == outcome and outcome not in (
                Outcome.UNSUPPORTED.value, Outcome.SKIPPED.value):
            changes["baselined"] = True  # a known deviation, with its reason in the baseline: not a failure
        return changes

    def settle_once(self, result: dict[str, Any], item: ScenarioItem) -> None:
        """settle() applied to a result the runner's sink did not settle (an xdist worker's, …); if the entry
        went to disk already, the results JSON gets the changes too."""
        if result.get("nodeid") != item.nodeid:
            changes = self.settle(result, item)
            result.update(changes)
            self.spool.amend(result, changes)

    def _spool_finished(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The runner's sink (its thread): the result settled and written to disk as it finishes, so that the
        results JSON copies its line as it is instead of decoding and encoding it again."""
        item = self.submitted.get((entry["id"], entry["target"]))
        if item is not None:
            entry.update(self.settle(entry, item))
        return self.spool.add(entry)

    def close(self) -> None:
        """Stop every target; keep their identities (with final logs) for the report."""
        if self.runner is not None:
            self.runner.close()
            for identity in self.runner.identities():
                self.identities[identity["label"]] = identity
            self.runner = None

    # ----- hooks of this session (registered as a plugin object) --------------------------------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.problems:
            pytest.exit("\n".join(self.problems), returncode=2)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """Submit every selected item up front; the runner's semaphore bounds what runs at once."""
        self.lean = lean_applies(self.config, session.items, ScenarioItem)
        self.terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if self.lean:
            # the collected items and scenarios live until the end: the cyclic GC need not walk them again;
            # dialogues allocate fast and make little cyclic garbage: collect the young generation less often
            gc.freeze()
            gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        if _is_worker(self.config) or self.config.option.collectonly:
            return
        if not session.items and not self.config.pluginmanager.has_plugin("dsession"):
            # nothing selected (an expression -k that matches nothing): the last reports stay as they were
            self.nothing_ran = True
            _drop_junit(self.config)
            return None
        items = [i for i in session.items if isinstance(i, ScenarioItem)]
        if items and not self._probe_first(session, items):
            return True  # type: ignore[return-value]  # no target usable: nothing runs
        items = [i for i in session.items if isinstance(i, ScenarioItem)]
        self._start_progress(items)
        self._prefetch(items)
        return None

    def _probe_first(self, session: pytest.Session, items: list[ScenarioItem]) -> bool:
        """Start and probe every target with selected scenarios before any scenario runs: an unusable one is
        named once (with its cause) and its scenarios are dropped; False when no target is usable."""
        labels = list(dict.fromkeys(i.target_label for i in items))
        self.unusable = self.get_runner().probe(labels)
        for label, why in self.unusable.items():
            line = why if why.startswith(label) else f"{label}: {why}"
            sys.stderr.write(f"target {line}\n")
        if not self.unusable or self.config.getoption("smtp_keep_unusable"):
            return True
        dropped = [i for i in session.items if getattr(i, "target_label", None) in self.unusable]
        self.config.hook.pytest_deselected(items=dropped)
        session.items[:] = [i for i in session.items if i not in dropped]
        if len(self.unusable) == len(labels):
            sys.stderr.write("no usable target: nothing was run and no report was written\n")
            self.nothing_ran = True
            _drop_junit(self.config)
            return False
        return True

    def _start_progress(self, items: list[ScenarioItem]) -> None:
        mode = self.config.getoption("smtp_progress")
        if mode == "off" or not items:
            return
        stream = os.fdopen(os.dup(2), "w", buffering=1, errors="replace")  # fd 2 is captured while items run
        live = mode == "live" or (mode == "auto" and stream.isatty() and os.environ.get("TERM") != "dumb")
        totals: dict[str, int] = {}
        for item in items:
            totals[item.target_label] = totals.get(item.target_label, 0) + 1
        self.progress = Progress(self.get_runner().progress, totals, stream, live=live)
        self.progress.start()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        if _is_worker(self.config) and isinstance(item, ScenarioItem):
            # xdist feeds a worker its items through a queue: look ahead into it.
            self._prefetch([item, *([nextitem] if nextitem else []), *_xdist_upcoming(item)])
        if self.lean and isinstance(item, ScenarioItem):
            run_item(item)
            return True
        return None

    def _prefetch(self, items: list[pytest.Item]) -> None:
        scenario_items = [i for i in items if isinstance(i, ScenarioItem)]
        if scenario_items:
            runner = self.get_runner()
            for item in scenario_items:
                self.submitted[(item.scenario.id, item.target_label)] = item  # before the runner can finish it
                runner.submit(item.scenario, item.target_label)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
        outcome = yield
        report = outcome.get_result()
        if isinstance(item, ScenarioItem) and call.when == "call" and item.smtp_result is not None:
            # an attribute survives xdist's report serialisation; user_properties would land in JUnit XML
            report.smtp_result = item.smtp_result
            item.smtp_result = None  # the report carries it on; the item lives until the session ends

    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, str] | None:
        result = getattr(report, "smtp_result", None)
        if result is None or report.when != "call":
            return None
        category, letter, word = STATUS.get(result["outcome"], ("passed", ".", "PASS"))
        if self.progress is not None and self.config.get_verbosity() <= 0:
            letter = ""  # the progress lines say it (pytest's letters would come in collection order)
        if result.get("baselined"):
            return "baselined", "b", f"{word} (baselined)"
        if result["outcome"] == "non-strict" and report.failed:
            category, letter = "failed", "N"
        return category, letter, word

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        if self.lean and self.terminal is not None:
            # pytest's terminal keeps every passed setup and teardown report under "" and never reads them:
            # two objects an item, 20 000 in a run of 30 targets
            quiet = self.terminal.stats.get("")
            if quiet:
                quiet.clear()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = getattr(report, "smtp_result", None)
        if result is not None and report.when == "call" and not _is_worker(self.config):
            # on disk already (the runner's sink) or now; memory (and pytest's list of reports) keeps a slim copy
            if not self.spool.holds(result):
                report.smtp_result = self.spool.add(result)
            self.results.append(report.smtp_result)

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        if self.shard is None:
            return
        index, count = self.shard
        keep, drop = [], []
        for item in items:
            # a stable hash of the node id: the same item lands in the same shard on every machine
            in_shard = not isinstance(item, ScenarioItem) or zlib.crc32(item.nodeid.encode()) % count == index - 1
            (keep if in_shard else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist controller: a worker finished; take the target identities it saw."""
        for identity in getattr(node, "workeroutput", {}).get("smtp_targets", []):
            self.identities.setdefault(identity["label"], identity)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.interrupted and self.runner is not None:
            self._take_completed(session)
        self.close()
        if _is_worker(self.config):
            self.config.workeroutput["smtp_targets"] = list(self.identities.values())  # type: ignore[attr-defined]
            return
        self.written: list[str] = []
        if self.nothing_ran or self.problems:
            if self.unusable or self.problems:
                session.exitstatus = 2
            return
        interrupted = self.interrupted and session.exitstatus == pytest.ExitCode.INTERRUPTED
        if interrupted:
            session.exitstatus = 130  # Ctrl-C or SIGTERM: the shell's 128+SIGINT, not pytest's usage error
            if not self.results:
                return  # stopped before any result: the last reports stay as they were
        self.document = self._document()
        if interrupted:
            self.document["run"]["interrupted"] = True  # the partial report says so
        json_path, html_path = self.config.getoption("smtp_json"), self.config.getoption("smtp_html")
        if json_path:
            self.spool.write_json(self.document, Path(json_path))
            self.written.append(json_path)
        if html_path:
            from .report.html import write_html

            write_html(self.document, Path(html_path))
            self.written.append(html_path)
        junit_path = self.config.getoption("smtp_junit")
        if junit_path:
            from .report.junit import write_junit

            write_junit(self.document, Path(junit_path), self.config.getoption("smtp_junit_non_strict"),
                        self.spool.full)
            self.written.append(junit_path)
        if self.config.getoption("smtp_update_baseline"):
            self.written.extend(self._update_baselines())
        self._ci_outputs()

    def _ci_outputs(self) -> None:
        """Markdown, SARIF, the GitHub step summary, and NON-STRICT made visible in the JUnit file."""
        from .report.github import github_enabled
        from .report.junit import mark_non_strict
        from .report.markdown import append_markdown, write_markdown
        from .report.sarif import write_sarif

        opt = self.config.getoption
        if opt("smtp_markdown"):
            write_markdown(self.document, Path(opt("smtp_markdown")))
            self.written.append(opt("smtp_markdown"))
        if opt("smtp_sarif"):
            write_sarif(self.document, Path(opt("smtp_sarif")))
            self.written.append(opt("smtp_sarif"))
        summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
        if github_enabled(opt("smtp_github")) and summary_file:
            append_markdown(self.document, Path(summary_file))
        junit = getattr(self.config.option, "xmlpath", None)  # pytest's junitxml wrote it already (we run last)
        if junit:
            mark_non_strict(Path(junit), self.results, opt("smtp_junit_non_strict"))

    def _take_completed(self, session: pytest.Session) -> None:
        """Interrupted: what finished before it counts, even when pytest had not asked for it yet."""
        assert self.runner is not None
        items = {(i.scenario.id, i.target_label): i for i in session.items if isinstance(i, ScenarioItem)}
        seen = {(r["id"], r["target"]) for r in self.results}
        for r in self.runner.completed():
            key = (r["id"], r["target"])
            if key in seen:
                continue
            item = items.get(key)
            if item is not None:
                self.settle_once(r, item)
            self.results.append(r)

    def _document(self) -> dict[str, Any]:
        ordered = []
        for target in self.targets:
            ordered.append(self.identities.get(target.label) or {
                "label": target.label, "kind": target.kind, "spec": target.spec, "address": "", "banner": "",
                "ehlo_keywords": [], "tls_ehlo_keywords": [], "tls": "none", "params": target.params.public(),
                "details": {}, "error": "not started (no scenario selected for it)", "logs": {}})
        finished = dt.datetime.now(dt.UTC)
        document = build_document(self.results, ordered, self.started, finished, sys.argv, self.strict)
        if self.baselines:
            document["baselines"] = {}
            for label, baseline in self.baselines.items():
                mine = [r for r in self.results if r["target"] == label]
                comparison = compare(mine, baseline)
                document["baselines"][label] = {
                    "new": [{"id": r["id"], "outcome": r["outcome"]} for r in comparison.new],
                    "fixed": [{"id": d.id, "expected": d.outcome} for d in comparison.fixed],
                }
        return document

    def _update_baselines(self) -> list[str]:
        written = []
        for target in self.targets:
            if not target.baseline:
                continue
            path = Path(target.baseline)
            if path.is_dir():
                path = path / "baseline.yaml"
            mine = [r for r in self.results if r["target"] == target.label]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(baseline_yaml(mine, self.baselines.get(target.label)))
            written.append(str(path))
        return written

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if _is_worker(self.config) or not self.results or not hasattr(self, "document"):
            return
        summary = self.document["summary"]
        tr = terminalreporter
        tr.section("smtp-conformance")
        shown = [o for o in ("pass", "fail", "non-strict", "info", "unsupported", "skipped", "error")]
        tr.write_line(f"{'target':<28}" + "".join(f"{o:>12}" for o in shown))
        for label, counts in summary["targets"].items():
            tr.write_line(f"{label[:27]:<28}" + "".join(f"{counts.get(o, 0):>12}" for o in shown))
        for label, changes in self.document.get("baselines", {}).items():
            for new in changes["new"]:
                tr.write_line(f"{label}: NEW {new['outcome'].upper()} {new['id']} (not in the baseline)")
            for fixed in changes["fixed"]:
                tr.write_line(f"{label}: FIXED {fixed['id']} (the baseline expected {fixed['expected']})")
        from .report.github import annotations, github_enabled
        from .report.terminal import summary_lines

        # findings first, as in the reports; pytest's writer decides colour (TTY, NO_COLOR, PY_COLORS)
        colour = bool(getattr(tr, "hasmarkup", False)) and not os.environ.get("NO_COLOR")
        for line in summary_lines(self.document, color=colour):
            tr.write_line(line)
        for label, counts in summary.get("profile_would_add", {}).items():
            added = ", ".join(f"{profile}: {n}" for profile, n in sorted(counts.items()))
            tr.write_line(f"{label}: no profile declared; a profile would add scenarios ({added}): "
                          "declare it with --profile (CLI), --smtp-profile or `profile:` in the targets file")
        for line in missing_parameter_lines(self.results):
            tr.write_line(line)
        for path in self.written:
            tr.write_line(f"written: {path}")
        if github_enabled(self.config.getoption("smtp_github")):
            for line in annotations(self.document):
                tr.write_line(line)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.interrupted = type(excinfo.value) is KeyboardInterrupt  # pytest's own Interrupted is a subclass

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.close()


def _output_problems(config: pytest.Config) -> list[str]:
    """Report paths that cannot be written, found before anything runs."""
    problems = []
    for option, path in (("--smtp-json", config.getoption("smtp_json")), ("--smtp-html", config.getoption("smtp_html")),
                         ("--smtp-junit", config.getoption("smtp_junit")),
                         ("--junitxml", getattr(config.option, "xmlpath", None))):
        why = unwritable(Path(path)) if path else None
        if why:
            problems.append(f"{option}: {why}")
    return problems


def _drop_junit(config: pytest.Config) -> None:
    """Nothing ran: keep the last JUnit XML instead of letting the junitxml plugin replace it with an empty one."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    if xml is not None:
        del config.stash[xml_key]
        config.pluginmanager.unregister(xml)


def reproduce_line(item: pytest.Item, target_args: str) -> str:
    """A command that replays one result from any folder: the scenario file by its absolute path."""
    path = getattr(item.parent, "resolved", None) or item.path.resolve()
    extra = "" if "scenarios" in path.parts else f" --smtp-scenarios {shlex.quote(str(path))}"
    node = f"{path}::{item.name}"
    return f"pytest -p no:cacheprovider {shlex.quote(node)}{extra} {target_args}".strip()


def _param_args(config: pytest.Config) -> str:
    out = ""
    for name in ("domain", "rcpt", "foreign_rcpt", "sender", "client", "maildir", "mailbox"):
        value = config.getoption(f"smtp_{name}")
        if value:
            out += f" --smtp-{name.replace('_', '-')} {shlex.quote(value)}"
    if config.getoption("smtp_auth"):
        out += " --smtp-auth USER:PASSWORD"
    if config.getoption("smtp_tls") != "none":
        out += f" --smtp-tls {config.getoption('smtp_tls')}"
    if config.getoption("smtp_profile"):
        out += f" --smtp-profile {config.getoption('smtp_profile')}"
    return out


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    index, sep, count = text.partition("/")
    if not (sep and index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise ConfigError([f"--smtp-shard {text!r}: expected I/N with 1 <= I <= N, e.g. 2/4"])
    return int(index), int(count)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if not _is_worker(config):
        # one run id for the controller and its xdist workers: containers are labelled with it
        os.environ.setdefault("SMTP_CONFORMANCE_SESSION", uuid.uuid4().hex[:12])
    state = SmtpSession(config)
    config.stash[STATE] = state
    config.pluginmanager.register(state, "smtp-conformance-session")
    for mark in ("must", "should", "may", "info"):
        config.addinivalue_line("markers", f"{mark}: scenarios of level {mark.upper()}")
    if not _is_worker(config) and hasattr(signal, "SIGTERM"):
        # SIGTERM must still stop targets (containers, processes): turn it into a KeyboardInterrupt.
        def on_term(signum: int, frame: object) -> None:
            raise KeyboardInterrupt("SIGTERM")

        with contextlib.suppress(ValueError):  # not in the main thread
            signal.signal(signal.SIGTERM, on_term)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if not is_scenario_file(file_path):
        return None
    roots = [Path(p).resolve() for p in parent.config.getoption("smtp_scenarios")]
    resolved = file_path.resolve()
    if "scenarios" in file_path.parts or any(resolved == r or r in resolved.parents for r in roots):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFileError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class ScenarioFile(pytest.File):
    resolved: Path | None = None  # the file's absolute path, resolved once for every item's Reproduce line

    def collect(self) -> list[ScenarioItem]:
        state = self.config.stash[STATE]
        self.resolved = self.path.resolve()
        scenarios, problems = state.loader.load_file(self.path)
        if problems:
            raise ScenarioFileError(problems)
        items = []
        for scenario in scenarios:
            marks = [*scenario.tags, _level_mark(scenario), f"rfc{scenario.rfc}"]
            for mark in marks:
                if mark not in state.registered_marks:
                    self.config.addinivalue_line("markers", f"{mark}: scenarios tagged {mark}")
                    state.registered_marks.add(mark)
            decorators = [getattr(pytest.mark, mark) for mark in marks]  # one set shared by the targets' items
            for target in state.targets:
                item = ScenarioItem.from_parent(self, name=f"{scenario.id}[{target.label}]", scenario=scenario,
                                                target_label=target.label)
                for decorator in decorators:
                    item.add_marker(decorator)
                items.append(item)
        return items

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, ScenarioFileError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)  # type: ignore[return-value]


def _level_mark(scenario: Scenario) -> str:
    return scenario.level.value.split()[0].lower()


class ScenarioFailed(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result["message"])
        self.result = result


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, target_label: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.target_label = target_label
        self.smtp_result: dict[str, Any] | None = None

    def runtest(self) -> None:
        state = self.config.stash[STATE]
        result = state.get_runner().result(self.scenario, self.target_label)
        state.settle_once(result, self)
        outcome = result["outcome"]
        skipped = outcome in (Outcome.UNSUPPORTED.value, Outcome.SKIPPED.value)
        self.smtp_result = result
        self.user_properties.append(("smtp_outcome", outcome))
        if skipped:
            pytest.skip(f"{outcome}: {result['message']}")
        if result.get("baselined"):
            return
        if fails_run(outcome, state.strict):
            raise ScenarioFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, ScenarioFailed):
            state = self.config.stash[STATE]
            r = excinfo.value.result
            if state.failure_chars <= 0:  # a flood of failures must not flood the terminal: the reports have all
                return (f"{r.get('id')} [{r.get('target')}]: {str(r.get('outcome', '')).upper()} "
                        f"{str(r.get('message', ''))[:200]} (details in the reports)")
            text = format_failure(r, max_rows=40)
            state.failure_chars -= len(text)
            return text
        return super().repr_failure(excinfo)  # type: ignore[return-value]

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.scenario.line - 1, f"{self.scenario.id} [{self.target_label}]"


def _xdist_upcoming(item: pytest.Item) -> list[pytest.Item]:
    """Items queued for this xdist worker (indices into session.items); empty if xdist changes."""
    items = item.session.items
    for plugin in item.config.pluginmanager.get_plugins():
        torun = getattr(plugin, "torun", None)
        queue = getattr(torun, "_items", None)
        if queue is None:
            continue
        try:
            return [items[i] for i in list(queue) if isinstance(i, int) and 0 <= i < len(items)]
        except (TypeError, RuntimeError):
            return []
    return []
