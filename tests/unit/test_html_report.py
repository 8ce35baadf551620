"""The HTML report renderer (conformance/report/html.py) against hand-built results documents."""

from __future__ import annotations

import copy
import re
from collections import Counter
from html.parser import HTMLParser

import pytest

from conformance.report import render_html, write_html
from conformance.report.html import OUTCOMES, result_anchor

EVIL_BANNER = '220 <script>alert("x")</script> \'"&'
EVIL_LABEL = 'evil"><img src=x onerror=alert(1)>'


def _target(label: str, banner: str = "220 mx.example.test ESMTP", **extra) -> dict:
    target = {
        "label": label,
        "kind": "address",
        "address": "127.0.0.1:2525",
        "spec": "127.0.0.1:2525",
        "banner": banner,
        "ehlo_keywords": ["PIPELINING", "SIZE 10240000", "8BITMIME"],
        "tls": "none",
        "params": {"domain": "example.test", "rcpt": "postmaster@example.test", "sender": "a@example.org"},
        "details": {"config": "default"},
        "error": None,
        "logs": {},
    }
    target.update(extra)
    return target


def _result(sid: str, target: str, outcome: str, code: int | None = 250, **extra) -> dict:
    section = extra.pop("section", "4.1.1.1")
    result = {
        "id": sid,
        "title": f"title of {sid}",
        "target": target,
        "outcome": outcome,
        "level": "MUST",
        "rfc": extra.pop("rfc", "5321"),
        "section": section,
        "quote": "The server MUST respond with a 250 reply.",
        "requirements": [f"5321-{section}-01"],
        "tags": ["core"],
        "file": "scenarios/core/helo.yaml",
        "line": 3,
        "nodeid": f"scenarios/core/helo.yaml::{sid}[{target}]",
        "reproduce": f"pytest 'scenarios/core/helo.yaml::{sid}' --smtp-target {target}",
        "duration_s": 0.0123,
        "message": f"Expected: one of 250 / Actual: {code} OK",
        "branch": None,
        "step": {
            "index": 1,
            "line": 7,
            "yaml": '- send: "HELO client.example\\r\\n"\n  expect: 250\n',
            "expected": ["250"],
            "actual": f"{code} OK\\r\\n",
        },
        "codes": [220, code],
        "decisive_code": code,
        "connection": "open",
        "findings": [],
        "transcript": [
            {"t": 0.0, "dir": "*", "data": "connect 127.0.0.1:2525"},
            {"t": 0.001, "dir": "S", "data": "220 mx.example.test ESMTP\\r\\n"},
            {"t": 0.002, "dir": "C", "data": "HELO client.example\\r\\n"},
            {"t": 0.003, "dir": "S", "data": f"{code} OK\\r\\n"},
        ],
    }
    result.update(extra)
    return result


def _summary(results: list[dict]) -> dict:
    outcomes = {o: 0 for o in OUTCOMES}
    per_target: dict[str, dict[str, int]] = {}
    for r in results:
        outcomes[r["outcome"]] += 1
        per_target.setdefault(r["target"], {o: 0 for o in OUTCOMES})[r["outcome"]] += 1
    return {"total": len(results), "outcomes": outcomes, "targets": per_target}


def _doc(targets: list[dict], results: list[dict]) -> dict:
    return {
        "format_version": 1,
        "tool": {"name": "smtp-conformance", "version": "0.1.0"},
        "run": {
            "started": "2026-11-27T09:30:00Z",
            "finished": "2026-11-27T09:30:04Z",
            "duration_s": 4.1,
            "argv": ["pytest", "scenarios", "--smtp-target", "builtin"],
            "strict": False,
        },
        "targets": targets,
        "results": results,
        "summary": _summary(results),
    }


SCENARIOS = ["helo-basic", "ehlo-basic", "rcpt-before-mail", "data-bare-lf", "vrfy-optional"]


def sample_doc() -> dict:
    """Three targets (one hostile banner, one that never started), five scenarios, all outcomes."""
    targets = [
        _target("builtin", kind="builtin", details={"image": "x", "digest": "sha256:abc"}),
        _target("evil", banner=EVIL_BANNER, logs={"stdout": "started <b>", "stderr": "</script>oops"}),
        _target("down", address="", banner="", error="connection refused <&>"),
    ]
    evil_transcript = [
        {"t": 0.0, "dir": "*", "data": "connect"},
        {"t": 0.001, "dir": "S", "data": EVIL_BANNER + "\\r\\n"},
        {"t": 0.002, "dir": "C", "data": "HELO <script>\\r\\n"},
        {"t": 0.003, "dir": "S", "data": "250 </script><script>alert(1)</script>\\r\\n"},
    ]
    results = [
        # all three agree: pass
        _result("helo-basic", "builtin", "pass", 250, section="4.1.1.1"),
        _result("helo-basic", "evil", "pass", 250, section="4.1.1.1", transcript=evil_transcript),
        _result("helo-basic", "down", "pass", 250, section="4.1.1.1"),
        # all agree on error, no decisive code
        _result("ehlo-basic", "builtin", "error", None, section="4.1.1.1", connection="timeout"),
        _result("ehlo-basic", "evil", "error", None, section="4.1.1.1", connection="timeout"),
        _result("ehlo-basic", "down", "error", None, section="4.1.1.1", connection="timeout"),
        # differ
        _result("rcpt-before-mail", "builtin", "pass", 503, section="4.1.4"),
        _result(
            "rcpt-before-mail",
            "evil",
            "fail",
            250,
            section="4.1.4",
            message='Expected: one of 503 / Actual: 250 <script>alert("m")</script>',
        ),
        _result("rcpt-before-mail", "down", "error", None, section="4.1.4"),
        _result(
            "data-bare-lf",
            "builtin",
            "non-strict",
            250,
            section="4.1.1.4",
            rfc="5321",
            findings=["bare LF <in> reply"],
        ),
        _result("data-bare-lf", "evil", "info", 250, section="4.1.1.4", branch="accepted"),
        _result("data-bare-lf", "down", "skipped", None, section="4.1.1.4"),
        # different RFC; only two targets ran it
        _result("vrfy-optional", "builtin", "unsupported", None, rfc="3030", section="2"),
        _result("vrfy-optional", "evil", "pass", 252, rfc="3030", section="2"),
    ]
    return _doc(targets, results)


@pytest.fixture
def doc() -> dict:
    return sample_doc()


class _Checker(HTMLParser):
    """Collects tags, ids, hrefs and the stack balance of structural elements."""

    VOID = {"meta", "br", "img", "input", "hr", "link", "wbr", "col", "area", "base", "source"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.starts: Counter[str] = Counter()
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs_d = dict(attrs)
        self.starts[tag] += 1
        self.elements.append((tag, attrs_d))
        if "id" in attrs_d:
            self.ids.append(attrs_d["id"])
        if tag == "a" and attrs_d.get("href"):
            self.hrefs.append(attrs_d["href"])
        if tag == "script":
            self._in_script = True
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}>, open: {self.stack[-5:]}")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()

    def handle_data(self, data):
        if self._in_script:
            self.script_text.append(data)


def _parse(html: str) -> _Checker:
    checker = _Checker()
    checker.feed(html)
    checker.close()
    return checker


def _rows(checker: _Checker) -> list[dict[str, str | None]]:
    return [a for t, a in checker.elements if t == "tr" and "row" in (a.get("class") or "").split()]


def _matrix_cells(html: str) -> list[list[str]]:
    """The data-outcome of each matrix cell, per scenario row, in order."""
    body = html.split('<table class="matrix"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr class="row"[^>]*>(.*?)</tr>', body, re.S)
    return [re.findall(r'<td class="cell [^"]*" data-outcome="([^"]*)"', r) for r in rows]


# --------------------------------------------------------------------------- tests


def test_well_formed_and_self_contained(doc):
    html = render_html(doc)
    checker = _parse(html)
    assert checker.errors == []
    assert checker.stack == []
    for tag in ("html", "head", "body", "style"):
        assert checker.starts[tag] == 1, tag
    assert html.count('<table class="matrix" id="matrix"') == 1
    # No external resources: no src/href to other documents, no @import / url().
    for tag, attrs in checker.elements:
        assert "src" not in attrs, tag
        href = attrs.get("href")
        if href is not None:
            assert href.startswith("#"), href
    assert "@import" not in html
    assert "url(" not in html
    assert "http://" not in html.split("<script>")[0].split("</style>")[0]


def test_untrusted_data_is_escaped(doc):
    html = render_html(doc)
    # Only the report's own inline script: exactly one opening and one closing tag.
    assert html.count("<script") == 1
    assert html.count("</script") == 1
    assert "<script>alert" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &#39;&#34;&amp;" in html
    assert "HELO &lt;script&gt;" in html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;/script&gt;oops" in html  # command log
    assert "connection refused &lt;&amp;&gt;" in html  # target error
    assert "bare LF &lt;in&gt; reply" in html  # findings
    # The inline script carries no data from the document.
    script = "".join(_parse(html).script_text)
    assert "alert" not in script


def test_hostile_label_is_sanitized_in_attributes(doc):
    doc["targets"][1]["label"] = EVIL_LABEL
    for r in doc["results"]:
        if r["target"] == "evil":
            r["target"] = EVIL_LABEL
    html = render_html(doc)
    checker = _parse(html)
    assert checker.errors == []
    assert "<img" not in html
    token = re.compile(r"^[A-Za-z0-9_-]*$")
    for _tag, attrs in checker.elements:
        if "id" in attrs:
            assert token.match(attrs["id"]), attrs["id"]
        for name, value in attrs.items():
            if name.startswith("data-") and name != "data-outcomes":
                assert token.match(value or ""), (name, value)
        if "data-outcomes" in attrs:
            assert all(token.match(t) for t in attrs["data-outcomes"].split())


def test_matrix_shape(doc):
    html = render_html(doc)
    checker = _parse(html)
    tcols = [a for t, a in checker.elements if t == "th" and "tcol" in (a.get("class") or "").split()]
    assert [a["data-target"] for a in tcols] == ["builtin", "evil", "down"]
    rows = _rows(checker)
    assert len(rows) == len(SCENARIOS)
    assert sorted(r["id"] for r in rows) == sorted(f"s-{s}" for s in SCENARIOS)
    cells = _matrix_cells(html)
    assert all(len(c) == 3 for c in cells)
    # The scenario one target never ran shows an empty "none" cell.
    by_id = dict(zip((r["id"] for r in rows), cells, strict=True))
    assert by_id["s-vrfy-optional"] == ["unsupported", "pass", "none"]
    # Grouped: RFC 5321 core first, then extensions (3030), then section in natural order.
    order = [r["id"] for r in rows]
    assert order.index("s-helo-basic") < order.index("s-data-bare-lf") < order.index("s-rcpt-before-mail")
    assert order.index("s-rcpt-before-mail") < order.index("s-vrfy-optional")
    assert html.count('class="grp grp-rfc"') == 2
    assert html.count('class="grp grp-sec"') == 4
    # Banner in the column header (escaped) and cell markers.
    assert 'title="220 &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &#39;&#34;&amp;"' in html
    assert '<span class="code">T/O</span></a>' in html
    assert '<span class="code">503</span></a>' in html
    # Readable without colour: symbol and word in every cell.
    assert '<span class="sym">✗</span> <span class="w">FAIL</span> <span class="code">250</span>' in html


def test_same_marker(doc):
    checker = _parse(render_html(doc))
    same = {r["id"]: r["data-same"] for r in _rows(checker)}
    assert same["s-helo-basic"] == "1"
    assert same["s-ehlo-basic"] == "1"
    assert same["s-rcpt-before-mail"] == "0"
    assert same["s-data-bare-lf"] == "0"
    assert same["s-vrfy-optional"] == "0"  # a missing cell is a difference
    outcomes = {r["id"]: r["data-outcomes"] for r in _rows(checker)}
    assert outcomes["s-rcpt-before-mail"].split() == ["error", "fail", "pass"]
    assert outcomes["s-helo-basic"] == "pass"


def test_detail_anchors_linked_from_cells(doc):
    html = render_html(doc)
    checker = _parse(html)
    assert len(set(checker.ids)) == len(checker.ids), "duplicate ids"
    details = [a for t, a in checker.elements if t == "details" and "result" in (a.get("class") or "")]
    assert len(details) == len(doc["results"])
    assert all("open" not in a for a in details)  # collapsed by default
    anchors = {a["id"] for a in details}
    for r in doc["results"]:
        anchor = result_anchor(r["target"], r["id"])
        assert anchor in anchors
        assert f'href="#{anchor}"' in html
    matrix = html.split('<table class="matrix"', 1)[1].split("</table>", 1)[0]
    cell_links = re.findall(r'href="(#r-[^"]*)"', matrix)
    assert len(cell_links) == len(doc["results"])
    assert set(cell_links) == {"#" + a for a in anchors}
    # Every in-page link resolves.
    ids = set(checker.ids)
    assert all(h[1:] in ids for h in checker.hrefs if h.startswith("#"))


def test_detail_contents(doc):
    html = render_html(doc)
    assert "<blockquote>The server MUST respond with a 250 reply.</blockquote>" in html
    assert "pytest &#39;scenarios/core/helo.yaml::helo-basic&#39; --smtp-target builtin" in html
    assert 'class="yaml">- send: &#34;HELO client.example\\r\\n&#34;\n  expect: 250</pre>' in html
    assert "5321-4.1.4-01" in html
    # Transcript: direction arrows and labels.
    assert '→ C: HELO client.example<i class="e">\\r\\n</i>' in html
    assert '← S: 220 mx.example.test ESMTP<i class="e">\\r\\n</i>' in html
    assert "   0.000 *    connect" in html


def test_header_counts(doc):
    checker = _parse(render_html(doc))
    header_counts: dict[str, str] = {}
    in_header = False
    for tag, attrs in checker.elements:
        if tag == "ul" and attrs.get("id") == "summary-counts":
            in_header = True
            continue
        if in_header and tag == "button":
            header_counts[attrs["data-outcome"]] = attrs["data-count"]
        elif in_header and tag not in ("span", "li"):
            break
    expected = Counter(r["outcome"] for r in doc["results"])
    assert list(header_counts) == list(OUTCOMES)
    assert {o: int(n) for o, n in header_counts.items()} == {o: expected.get(o, 0) for o in OUTCOMES}
    assert expected["pass"] == 5 and expected["error"] == 4


def test_target_cards(doc):
    html = render_html(doc)
    checker = _parse(html)
    cards = [a for t, a in checker.elements if t == "article" and a.get("class") == "target"]
    assert [a["id"] for a in cards] == ["t-builtin", "t-evil", "t-down"]
    assert "sha256:abc" in html
    assert "SIZE 10240000" in html
    assert "could not start / probe: connection refused &lt;&amp;&gt;" in html
    assert html.count('<details class="log">') == 2


def test_single_target_has_duration_and_no_diff_toggle(doc):
    single = copy.deepcopy(doc)
    single["targets"] = single["targets"][:1]
    single["results"] = [r for r in single["results"] if r["target"] == "builtin"]
    html = render_html(single)
    checker = _parse(html)
    assert checker.errors == []
    assert len(_rows(checker)) == len(SCENARIOS)
    assert all(len(c) == 1 for c in _matrix_cells(html))
    assert 'id="f-diff"' not in html
    assert html.count('<td class="c-dur">0.012</td>') == len(SCENARIOS)


def test_empty_results():
    html = render_html(_doc([], []))
    checker = _parse(html)
    assert checker.errors == [] and checker.stack == []
    assert _rows(checker) == []
    assert "No results." in html


def test_minimal_document():
    # Only the required skeleton; missing optional fields must not break rendering.
    html = render_html({"results": [{"id": "x", "target": "t", "outcome": "pass"}]})
    assert 'data-same="1"' in html


def test_duplicate_anchor_deduplicated(doc):
    doc["results"].append(_result("helo-basic", "builtin", "fail", 550))
    checker = _parse(render_html(doc))
    assert len(set(checker.ids)) == len(checker.ids)


def test_colliding_sanitized_ids_stay_unique():
    targets = [_target("a.b"), _target("a_b")]
    results = [_result(sid, t["label"], "pass") for sid in ("x.1", "x_1") for t in targets]
    html = render_html(_doc(targets, results))
    checker = _parse(html)
    assert len(set(checker.ids)) == len(checker.ids)
    assert len(_rows(checker)) == 2
    ids = set(checker.ids)
    assert all(h[1:] in ids for h in checker.hrefs if h.startswith("#"))
    cards = [a["id"] for t, a in checker.elements if t == "article"]
    assert cards == ["t-a_b", "t-a_b-2"]


def test_write_html(doc, tmp_path):
    path = tmp_path / "sub" / "report.html"
    write_html(doc, path)
    assert path.read_text(encoding="utf-8") == render_html(doc)


def test_ten_thousand_results():
    targets = [_target("a"), _target("b")]
    outcomes = ["pass", "pass", "pass", "fail", "non-strict", "info", "unsupported", "skipped", "error"]
    results = []
    for i in range(5000):
        sid = f"s{i:05d}"
        section = f"{i % 7}.{i % 13}"
        for j, label in enumerate(("a", "b")):
            results.append(
                _result(sid, label, outcomes[(i + j * (i % 3)) % len(outcomes)], 250, section=section)
            )
    html = render_html(_doc(targets, results))
    assert html.count('<tr class="row"') == 5000
    assert html.count('<details class="result"') == 10000


def test_findings_section_comes_first_and_links_to_details(doc):
    html = render_html(doc)
    assert html.index('id="findings"') < html.index('id="matrix"') < html.index('<section class="details">')
    findings = html.split('id="findings"', 1)[1].split("</section>", 1)[0]
    items = re.findall(r'<li class="finding" data-outcome="([^"]+)"><a href="#([^"]+)">', findings)
    # builtin: its NON-STRICT; evil: its FAIL (targets in column order, FAIL before NON-STRICT within one)
    assert items == [("non-strict", result_anchor("builtin", "data-bare-lf")),
                     ("fail", result_anchor("evil", "rcpt-before-mail"))]
    assert "expected</span> <span class=\"mono\">250</span>" in findings
    # the target that could not run anything says why, with a count
    assert re.search(r'<tr class="reason"><th>harness could not judge</th><td class="n">2</td>', findings)


def test_profile_in_the_headers(doc):
    doc = copy.deepcopy(doc)
    doc["targets"][0]["profile"] = "mx"
    html = render_html(doc)
    assert "<dt>profile</dt><dd>mx</dd>" in html
    assert '<a href="#t-builtin">builtin</a> <span class="muted">(mx)</span>' in html


def test_large_reports_leave_passing_transcripts_out(doc, monkeypatch):
    from conformance.report import html as report_html

    monkeypatch.setattr(report_html, "LEAN_REPORT_RESULTS", 5)
    html = render_html(doc)
    detail = html.split(f'id="{result_anchor("builtin", "helo-basic")}"', 1)[1].split("</details>", 1)[0]
    assert 'class="transcript"' not in detail and "transcript left out of this page" in detail
    failing = html.split(f'id="{result_anchor("evil", "rcpt-before-mail")}"', 1)[1].split("</details>", 1)[0]
    assert 'class="transcript"' in failing
