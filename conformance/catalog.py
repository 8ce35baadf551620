"""Traceability: scenarios ↔ requirement sentences; coverage figures and the generated docs catalog."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .model import Scenario, rfc_order, section_order, sorted_scenarios

LEVEL_CLASS = {
    "MUST": "MUST", "MUST NOT": "MUST", "SHALL": "MUST", "SHALL NOT": "MUST", "REQUIRED": "MUST",
    "SHOULD": "SHOULD", "SHOULD NOT": "SHOULD", "RECOMMENDED": "SHOULD", "NOT RECOMMENDED": "SHOULD",
    "MAY": "MAY", "OPTIONAL": "MAY",
}
CLASSES = ("MUST", "SHOULD", "MAY")


def load_requirements() -> list[dict[str, Any]]:
    data = json.loads(resources.files("conformance").joinpath("data/requirements.json").read_text())
    return list(data["requirements"])


def server_testable(req: dict[str, Any]) -> bool:
    """The inventory's server wire-testable sentences: what a server conformance suite is measured on."""
    return req["actor"] in ("server", "both") and bool(req.get("wire_testable"))


def level_class(req: dict[str, Any]) -> str:
    return LEVEL_CLASS.get(req.get("server_keyword") or req["keyword"], "MAY")


@dataclass
class Coverage:
    rows: list[dict[str, Any]]  # per RFC × class: covered, total
    uncovered: list[dict[str, Any]]
    by_requirement: dict[str, list[str]]  # requirement id -> scenario ids
    stored: dict[str, list[str]] = field(default_factory=dict)  # checked/unchecked/undeclared -> scenario ids

    def totals(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {c: {"covered": 0, "total": 0} for c in CLASSES}
        for row in self.rows:
            out[row["class"]]["covered"] += row["covered"]
            out[row["class"]]["total"] += row["total"]
        return out

    def as_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "totals": self.totals(),
                "uncovered": [{k: r[k] for k in ("id", "rfc", "section", "keyword", "quote")} for r in self.uncovered],
                "stored": self.stored}


def coverage(scenarios: list[Scenario], requirements: list[dict[str, Any]]) -> Coverage:
    by_requirement: dict[str, list[str]] = defaultdict(list)
    for scenario in scenarios:
        for req in scenario.requirements:
            by_requirement[req].append(scenario.id)
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    uncovered = []
    for req in requirements:
        if not server_testable(req):
            continue
        key = (req["rfc"], level_class(req))
        counts[key][1] += 1
        if by_requirement.get(req["id"]):
            counts[key][0] += 1
        else:
            uncovered.append(req)
    order = sorted(counts.items(), key=lambda kv: (rfc_order(kv[0][0]), CLASSES.index(kv[0][1])))
    rows = [{"rfc": rfc, "class": cls, "covered": c, "total": t} for (rfc, cls), (c, t) in order]
    return Coverage(rows, uncovered, dict(by_requirement), stored_form(scenarios))


def stored_form(scenarios: list[Scenario]) -> dict[str, list[str]]:
    """Scenario ids by what they say of the stored form of their messages (`stored:`); `undeclared`: those
    that send message content without saying."""
    from .loader import sends_content

    out: dict[str, list[str]] = {"checked": [], "unchecked": [], "undeclared": []}
    for s in sorted(scenarios, key=lambda s: s.id):
        if s.stored in out:
            out[s.stored].append(s.id)
        elif sends_content(s.actions):
            out["undeclared"].append(s.id)
    return out


def format_coverage(cov: Coverage) -> str:
    lines = [f"{'RFC':<8}" + "".join(f"{c + '-level':>16}" for c in CLASSES)]
    per_rfc: dict[str, dict[str, str]] = defaultdict(dict)
    for row in cov.rows:
        per_rfc[row["rfc"]][row["class"]] = f"{row['covered']}/{row['total']}"
    for rfc, cells in sorted(per_rfc.items(), key=lambda kv: rfc_order(kv[0])):
        lines.append(f"{rfc:<8}" + "".join(f"{cells.get(c, '-'):>16}" for c in CLASSES))
    totals = cov.totals()
    cells = []
    for c in CLASSES:
        t = totals[c]
        pct = 100 * t["covered"] / t["total"] if t["total"] else 100
        cells.append(f"{t['covered']}/{t['total']} {pct:3.0f}%")
    lines.append(f"{'all':<8}" + "".join(f"{cell:>16}" for cell in cells))
    lines.append("")
    lines.append("(server wire-testable requirement sentences covered by at least one scenario)")
    if cov.stored:
        lines.append("")
        lines.append(f"stored form: checked by {len(cov.stored['checked'])} scenarios, unchecked in "
                     f"{len(cov.stored['unchecked'])}" + (f", undeclared in {len(cov.stored['undeclared'])}"
                                                          if cov.stored["undeclared"] else "")
                     + " (smtp-conformance list --stored lists them)")
    if cov.uncovered:
        lines.append("")
        lines.append(f"uncovered ({len(cov.uncovered)}):")
        for req in cov.uncovered:
            keyword = req.get("server_keyword") or req["keyword"]
            lines.append(f"  {req['id']:<16} {keyword:<10} {req['quote'][:100]}")
    return "\n".join(lines)


# ----- the generated markdown catalog -----------------------------------------------------------------
def _anchor(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in text.lower())


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def write_catalog(scenarios: list[Scenario], requirements: list[dict[str, Any]], out: Path, repo: Path) -> list[Path]:
    """docs/catalog/index.md plus one page per RFC; scenario ↔ requirement links in both directions."""
    out.mkdir(parents=True, exist_ok=True)
    cov = coverage(scenarios, requirements)
    reqs = {r["id"]: r for r in requirements}
    by_rfc: dict[str, list[Scenario]] = defaultdict(list)
    for s in scenarios:
        by_rfc[s.rfc].append(s)
    req_rfcs = sorted({r["rfc"] for r in requirements if server_testable(r)} | set(by_rfc), key=rfc_order)
    written = []
    index = ["# Scenario catalog", "", "Generated by `smtp-conformance catalog` from `scenarios/` and the requirements "
             "inventory (`conformance/data/requirements.json`). Do not edit by hand.", "",
             f"{len(scenarios)} scenarios.", "", "## Coverage of server wire-testable requirements", "", "```",
             format_coverage(Coverage(cov.rows, [], cov.by_requirement)).strip(), "```", "", "## By RFC", ""]
    for rfc in req_rfcs:
        index.append(f"- [RFC {rfc}](rfc{rfc}.md): {len(by_rfc.get(rfc, []))} scenarios")
    (out / "index.md").write_text("\n".join(index) + "\n")
    written.append(out / "index.md")
    for rfc in req_rfcs:
        lines = [f"# RFC {rfc}", "", "[← catalog](index.md)", "", "## Scenarios", ""]
        lines.append("| id | level | section | title | requirements |")
        lines.append("|---|---|---|---|---|")
        for s in sorted_scenarios(by_rfc.get(rfc, [])):
            links = ", ".join(f"[{r}](rfc{reqs[r]['rfc'] if r in reqs else rfc}.md#{_anchor(r)})"
                              for r in s.requirements)
            lines.append(f"| [{s.id}](#{_anchor(s.id)}) | {s.level.value} | §{s.section} | {_md(s.title)} | {links} |")
        lines.append("")
        for s in sorted_scenarios(by_rfc.get(rfc, [])):
            rel = Path(s.file)
            link = f"../../{rel.as_posix()}" if not rel.is_absolute() else rel.as_posix()
            lines += [f"### {s.id}", "", f"**{_md(s.title)}** — {s.level.value}, RFC {s.rfc} §{s.section}, "
                      f"[{rel.name}:{s.line}]({link}#L{s.line})", "", f"> {_md(s.quote)}", ""]
            if s.level_from:
                lines += [f"Level {s.level.value} from: {_md(s.level_from)}", ""]
            if s.description:
                lines += [_md(" ".join(s.description.split())), ""]
            if s.tags:
                lines += ["Tags: " + ", ".join(s.tags) + ("; requires " + ", ".join(s.requires) if s.requires else ""),
                          ""]
            if s.profiles:
                lines += ["Profiles: " + ", ".join(s.profiles) + " (other targets, and those that declare no profile, "
                          "skip it)", ""]
            if s.requirements:
                lines += ["Checks: " + ", ".join(f"[{r}](rfc{reqs[r]['rfc'] if r in reqs else rfc}.md#{_anchor(r)})"
                                                 for r in s.requirements), ""]
        lines += ["## Requirements (server, wire-testable)", ""]
        for req in [r for r in requirements if r["rfc"] == rfc and server_testable(r)]:
            covering = cov.by_requirement.get(req["id"], [])
            keyword = req.get("server_keyword") or req["keyword"]
            where = ", ".join(f"[{sid}](rfc{_rfc_of(sid, scenarios)}.md#{_anchor(sid)})" for sid in covering) \
                or "**not covered**"
            lines += [f"### {req['id']}", "", f"{keyword}, §{req['section']} {_md(req.get('section_title', ''))}", "",
                      f"> {_md(req['quote'])}", "", f"Scenarios: {where}", ""]
        page = out / f"rfc{rfc}.md"
        page.write_text("\n".join(lines) + "\n")
        written.append(page)
    return written


def _rfc_of(scenario_id: str, scenarios: list[Scenario]) -> str:
    return next((s.rfc for s in scenarios if s.id == scenario_id), "5321")


# ----- known deviations, generated from the baselines ---------------------------------------------------
SERVER_NOTES = {
    "builtin": "the embedded default (aiosmtpd with smtp-conformance's handler)",
    "postfix": "Postfix 3.7 (Debian 12), scripts/servers/postfix",
    "exim": "Exim 4.96 (Debian 12), scripts/servers/exim",
    "opensmtpd": "OpenSMTPD 6.8 (Debian 12), scripts/servers/opensmtpd",
    "aiosmtpd": "aiosmtpd 1.4.6, scripts/servers/aiosmtpd",
    "smtp-server": "Node smtp-server 3.21, scripts/servers/smtp-server",
    "maildev": "maildev 3.0 (a development sink), scripts/servers/maildev",
    "haraka": "Haraka 3.3 (npm), scripts/servers/haraka",
    "postfix-submission": "Postfix 3.7 as a submission server (STARTTLS, Dovecot SASL, 530 before AUTH), "
                          "scripts/servers/postfix-submission, run with --profile submission and credentials",
    "postfix-submission-noauth": "the same submission server run with --profile submission and no credentials",
    "postfix-tls-required": "Postfix 3.7 requiring STARTTLS before MAIL (530), scripts/servers/postfix-tls-required",
    "postfix-greylist": "Postfix 3.7 greylisting every local RCPT (450 4.7.1), scripts/servers/postfix-greylist, "
                        "run with --profile mx",
}
# The profile each server is judged under (tests/integration/test_catalog_real_servers.py and
# test_policy_servers.py run them so): profile-dependent scenarios are judged for it.
SERVER_PROFILES = {"postfix": "mx", "exim": "mx", "opensmtpd": "mx", "maildev": "catcher", "haraka": "mx",
                   "postfix-submission": "submission", "postfix-submission-noauth": "submission",
                   "postfix-greylist": "mx"}
# Baseline entries whose reason starts so are a policy server's allowed refusals, listed by id only.
POLICY_REFUSAL = "Policy refusal"


def write_deviations(scenarios: list[Scenario], baselines_dir: Path, out: Path) -> None:
    from .baseline import load_baseline

    by_id = {s.id: s for s in scenarios}
    lines = ["# Known deviations of real servers", "",
             "Generated by `smtp-conformance deviations` from `baselines/` (the reasons are written there, by hand) "
             "and the scenarios' RFC sentences. Every non-PASS result of the catalog against these servers is listed "
             "with why it is a genuine deviation — or, for INFO and UNSUPPORTED, which way the server went. "
             "`tests/integration/test_catalog_real_servers.py` checks that each server's non-PASS results are "
             "exactly these.", ""]
    names = sorted((p for p in baselines_dir.iterdir() if p.is_dir() or p.suffix == ".yaml"),
                   key=lambda p: (list(SERVER_NOTES).index(p.stem) if p.stem in SERVER_NOTES else 99, p.stem))
    for path in names:
        baseline = load_baseline(path)
        counts: dict[str, int] = defaultdict(int)
        for dev in baseline.deviations.values():
            counts[dev.outcome] += 1
        summary = ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "none"
        profile = SERVER_PROFILES.get(baseline.name)
        judged = f"judged as profile `{profile}`" if profile else "no profile declared (only what holds for every " \
                                                                 "profile is judged)"
        lines += [f"## {baseline.name}", "", f"{SERVER_NOTES.get(baseline.name, baseline.name)}; {judged} — "
                  f"{summary}.", ""]
        devs = sorted(baseline.deviations.values(), key=lambda d: _deviation_key(d.id, by_id))
        policy = [d for d in devs if d.reason.startswith(POLICY_REFUSAL)]
        if policy:
            lines += [f"{len(policy)} results were decided by the policy's own reply before the requirement could be "
                      f"judged (not deviations; reasons in baselines/{baseline.name}/): "
                      + ", ".join(f"`{d.id}`" for d in policy) + ".", ""]
        for dev in devs:
            if dev in policy:
                continue
            s = by_id.get(dev.id)
            head = f"### {baseline.name}: {dev.id} — {dev.outcome.upper()}"
            lines += [head, ""]
            if s is not None:
                lines += [f"{_md(s.title)} ({s.level.value}, RFC {s.rfc} §{s.section})", "", f"> {_md(s.quote)}", ""]
                if s.level_from:
                    lines += [f"Level {s.level.value} from: {_md(s.level_from)}", ""]
                if s.profiles:
                    lines += [f"Applies to profiles: {', '.join(s.profiles)}", ""]
            else:
                lines += ["*(scenario no longer exists)*", ""]
            if dev.actual:
                lines += [f"Actual: `{dev.actual.replace('`', chr(39))}`", ""]
            lines += [f"Why: {_md(dev.reason)}", ""]
    out.write_text("\n".join(lines) + "\n")


def _deviation_key(scenario_id: str, by_id: dict[str, Scenario]) -> tuple[Any, ...]:
    s = by_id.get(scenario_id)
    if s is None:
        return ((9, 0, ""), (), scenario_id)
    return (rfc_order(s.rfc), section_order(s.section), scenario_id)
