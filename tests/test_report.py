"""The static HTML report: rendered from a real registry, checked as HTML and in a real headless browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from graduation.records import (Consistency, DataAuditRecord, EvalRecord, SignoffRecord, SliceStats, SymbolFlag,
                                VerifierCheck, VerifierValidationRecord)

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / ".artifacts"
HOSTILE_TITLE = '<script>alert("title")</script> & co'
HOSTILE_MODEL = '"><img src=x onerror=alert(1)>'
HOSTILE_SIGNER = "<b>Mallory</b>"
DECISION_ID = "ab" * 32
JOB_ID = "hamiltonian-mechanics-grpo-0001"

HAMILTONIAN = """\
domain: hamiltonian-mechanics
title: Equations of motion from a Hamiltonian
risk: high
owners: [physics-ml@example.org]
ground_truth:
  - {name: textbook, path: data/ham/textbook.jsonl, provenance: expert}
  - name: distilled
    path: data/ham/distilled.jsonl
    provenance: model_generated
    derived_from: textbook
    generated_by: {model: some-instruct-32b}
verifiers:
  - {name: equations, kind: exact, role: substance}
  - {name: latex-shape, kind: regex, role: format, options: {pattern: '^\\\\$.*\\\\$$'}}
deployment: {target: assisted}
"""

PEDESTRIAN = """\
domain: pedestrian-perception
title: Road users from track descriptions
risk: critical
owners: [perception@example.org]
ground_truth:
  - {name: labelled, path: data/ped/labelled.jsonl, provenance: human_verified}
verifiers:
  - {name: label, kind: exact, role: substance}
slices:
  - {name: at_crosswalk, field: at_crosswalk, equals: true}
  - {name: off_crosswalk, field: at_crosswalk, equals: false}
deployment: {target: autonomous}
"""

HOSTILE = f"""\
domain: hostile
title: '{HOSTILE_TITLE}'
risk: low
owners: [mallory@example.org]
ground_truth:
  - {{name: ref, path: data/hostile.jsonl, provenance: expert}}
verifiers:
  - {{name: answer, kind: exact, role: substance}}
"""


def wl(passed: int, n: int) -> float:
    from graduation.policy.phase import wilson_lower

    return wilson_lower(passed, n)


def eval_record(model: str, rnd: int, n: int, passed: int, fmt: float, *, slices=(), symbols=(),
                consistency: Consistency | None = None) -> EvalRecord:
    rate = passed / n
    return EvalRecord(model=model, round=rnd, n=n, passed=passed, pass_rate=rate, wilson_lower=wl(passed, n),
                      substance_pass_rate=rate, format_pass_rate=fmt, shape_gap=fmt - rate,
                      slices=list(slices), symbols=list(symbols), consistency=consistency)


def model_id(session, name: str) -> int:
    """A registered model (by an external digest), registered the way the registry does: chained."""
    import hashlib

    from graduation.store.models import register_model

    info, _ = register_model(session, name, digest="sha256:" + hashlib.sha256(name.encode()).hexdigest(),
                             kind="external")
    return info.id


def validation(name: str) -> VerifierValidationRecord:
    return VerifierValidationRecord(verifiers=[VerifierCheck(
        name=name, role="substance", kind="exact", references=50, references_accepted=50, controls=120,
        controls_rejected=120, trustworthy=True)])


def populate(root: Path, db) -> None:
    """Three domains: a rising hamiltonian with golden_hour_sun in its distilled data, a pedestrian domain
    failing off the crosswalk, and a domain whose title, model id and signer are hostile markup."""
    from graduation.service.project import load_many
    from graduation.store.domains import register
    from graduation.store.evidence import add_evidence

    files = {"hamiltonian-mechanics.yaml": HAMILTONIAN, "pedestrian-perception.yaml": PEDESTRIAN,
             "hostile.yaml": HOSTILE}
    for name, text in files.items():
        (root / "domains" / name).write_text(text)
    for rel in ("data/ham/textbook.jsonl", "data/ham/distilled.jsonl", "data/ped/labelled.jsonl",
                "data/hostile.jsonl"):
        path = root / "domains" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"prompt": "p", "answer": "a"}\n')
    loaded = load_many([root / "domains"], root)
    with db.write() as s:
        for item in loaded:
            register(s, item)
        ham = "hamiltonian-mechanics"
        add_evidence(s, ham, "verifier_validation", validation("equations"))
        for rnd, passed in enumerate((96, 128, 150, 166, 176, 182), start=1):
            add_evidence(s, ham, "eval", eval_record("qwen-0.5b-grpo@1", rnd, 200, passed, 0.97),
                         model_id=model_id(s, "qwen-0.5b-grpo"), round=rnd)
        add_evidence(s, ham, "data_audit", DataAuditRecord(
            file="domains/data/ham/distilled.jsonl", rows=500, substance_failed=205, substance_fail_rate=0.41,
            format_pass_rate=0.99, shape_gap=0.40, provenance="model_generated", lineage_depth=1,
            ungraduated_generators=["some-instruct-32b"],
            symbols=[SymbolFlag(symbol="golden_hour_sun", rows=203, rate=0.406, examples=["line 3", "line 7"])]))
        add_evidence(s, ham, "signoff", SignoffRecord(by="Ada Lovelace", role="domain lead"))
        add_evidence(s, ham, "signoff", SignoffRecord(by="Emmy Noether", role="physics reviewer", note="checked 40"))

        ped = "pedestrian-perception"
        add_evidence(s, ped, "verifier_validation", validation("label"))
        for rnd, (cw, off) in enumerate(((92, 40), (95, 44), (97, 47)), start=1):
            slices = [SliceStats(name="at_crosswalk", n=100, passed=cw, pass_rate=cw / 100, wilson_lower=wl(cw, 100)),
                      SliceStats(name="off_crosswalk", n=100, passed=off, pass_rate=off / 100,
                                 wilson_lower=wl(off, 100))]
            add_evidence(s, ped, "eval", eval_record("perception-v3", rnd, 200, cw + off, 0.99, slices=slices,
                                                     consistency=Consistency(k=4, prompts=200, pass_at_1=0.7,
                                                                             pass_all_k=0.45, flip_rate=0.31)),
                         model_id=model_id(s, "perception-v3"), round=rnd)

        # A registered name cannot carry markup (names are checked), but the record's own model field is text
        # the report shows: the markup rides in there.
        add_evidence(s, "hostile", "eval", eval_record(HOSTILE_MODEL, 1, 50, 30, 0.9),
                     model_id=model_id(s, "hostile-model"), round=1)
        add_evidence(s, "hostile", "signoff", SignoffRecord(by=HOSTILE_SIGNER, role="<i>role</i>"))

        # a recorded decision and the job it approved
        from graduation.store import auditlog as audit
        audit.append(s, "decision", {"decision_id": DECISION_ID, "domain": ham, "context": "jobs run",
                                     "action": "train:grpo", "allowed": True, "phase": "discovery"}, domain=ham)
        audit.append(s, "decision", {"decision_id": "cd" * 32, "domain": ham, "context": "status --require",
                                     "action": "train:sft", "allowed": False, "phase": "discovery"}, domain=ham)
        from graduation.store.jobs import add_job, set_state

        add_job(s, id=JOB_ID, domain=ham, domain_version=1, mode="grpo", target="trl",  # chained, as jobs are
                path=f"registry/jobs/{JOB_ID}", decision_id=DECISION_ID)
        set_state(s, JOB_ID, "succeeded")


@pytest.fixture
def report(project: Path, db_url: str):
    """A populated registry and its report written under the project's registry/reports/."""
    from graduation.report.build import write_report
    from graduation.store import Database

    db = Database(db_url)
    populate(project, db)
    result = write_report(db, project)
    db.dispose()
    return result


class _Tags(HTMLParser):
    """Collects start tags and attributes; fails on nothing, so checks stay explicit."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def test_report_files_and_summary(report, project: Path):
    out = project / "registry" / "reports"
    assert report.index == out / "index.html"
    assert sorted(p.relative_to(out).as_posix() for p in report.pages) == [
        "domains/hamiltonian-mechanics.html", "domains/hostile.html", "domains/pedestrian-perception.html",
        "index.html"]
    assert report.summary["domains"] == 3
    ham = report.summary["by_domain"]["hamiltonian-mechanics"]
    assert ham["rounds"] == 6 and ham["risk"] == "high"
    assert "train:grpo" in ham["allowed"] and "train:sft" not in ham["allowed"]
    assert not list(out.rglob("*.tmp")), "atomic writes left temporary files behind"


def test_report_shows_the_decisions_of_registry_status(report, project: Path, db_url: str):
    from graduation.policy.model import load_policy
    from graduation.service.decisions import decisions
    from graduation.store import Database

    db = Database(db_url)
    expected = {r.decision.domain: (r.decision.phase, r.decision.allowed_actions)
                for r in decisions(db, load_policy(None, project))}
    db.dispose()
    shown = {name: (d["phase"], d["allowed"]) for name, d in report.summary["by_domain"].items()}
    assert shown == expected


def test_overview_lists_phase_risk_and_actions(report, project: Path):
    html = report.index.read_text()
    rows = {a["data-domain"] for t, a in tags(html) if t == "tr" and "data-domain" in a}
    assert rows == {"hamiltonian-mechanics", "pedestrian-perception", "hostile"}
    row = re.search(r'<tr data-domain="pedestrian-perception">(.*?)</tr>', html, re.S).group(1)
    assert 'data-risk="critical"' in row
    assert 'data-phase="discovery"' in row
    assert 'data-action="deploy:sandbox" data-allowed="true"' in row
    assert 'data-action="deploy:autonomous" data-allowed="false"' in row
    assert 'data-action="train:sft" data-allowed="false"' in row
    assert len(re.findall(r'<svg[^>]*data-chart="sparkline"', html)) == 3
    assert 'href="domains/hamiltonian-mechanics.html"' in html


def test_domain_page_values(report, project: Path, db_url: str):
    html = (project / "registry/reports/domains/hamiltonian-mechanics.html").read_text()
    # pass-rate chart: six rounds, Wilson band, the policy's bar from the real policy thresholds
    svg = re.search(r'<svg[^>]*data-chart="pass-rate"[^>]*>', html).group(0)
    assert 'data-rounds="6"' in svg
    from graduation.policy import load_policy

    bar = load_policy(None, project).threshold_facts["high"]["min_wilson_lower"]
    assert f'data-threshold="{bar:.4f}"' in svg
    assert 'data-mark="wilson-band"' in html and html.count('data-mark="round"') == 6
    assert "r6: 182/200 passed (91%)" in html  # the newest round's tooltip
    # flagged symbol with its rate, and the lineage of the distilled data
    assert re.search(r'data-symbol="golden_hour_sun".*?40\.6%.*?203', html, re.S)
    assert "some-instruct-32b" in html and "ungraduated" in html
    # shape gap: six rounds plus the audited file
    assert re.search(r'data-chart="shape-gap"[^>]*data-rows="7"', html)
    assert "gap +0.40" in html
    # sign-offs and the decision with its reasons
    assert 'data-signoff="Ada Lovelace"' in html and 'data-signoff="Emmy Noether"' in html
    sft = re.search(r'<tr data-action="train:sft" data-allowed="false">(.*?)</tr>', html, re.S).group(1)
    assert "golden_hour_sun" in sft
    assert 'data-action="train:grpo" data-allowed="true"' in html
    # the job and the decision log
    assert f'data-job="{JOB_ID}"' in html and DECISION_ID[:16] in html
    assert 'data-audit-chain="ok"' in html
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)  # every record is chained now: the decisions are not entries 1 and 2
    with engine.connect() as conn:
        seqs = [s for (s,) in conn.execute(text("SELECT seq FROM audit_log WHERE kind = 'decision' ORDER BY seq"))]
    engine.dispose()
    assert len(seqs) == 2 and all(f'data-audit-seq="{s}"' in html for s in seqs)


def test_tampered_audit_log_is_shown_broken(project: Path, db_url: str):
    from sqlalchemy import text

    from graduation.report.build import write_report
    from graduation.store import Database

    db = Database(db_url)
    populate(project, db)
    with db.write() as s:  # the first decision entry (record entries precede it: a changed one is refused)
        first = s.execute(text("SELECT min(seq) FROM audit_log WHERE kind = 'decision'")).scalar()
        s.execute(text("UPDATE audit_log SET payload_json = :p WHERE seq = :s"),
                  {"p": '{"action":"train:sft","allowed":true}', "s": first})
    result = write_report(db, project)
    db.dispose()
    assert result.summary["audit_chain_ok"] is False
    index = result.index.read_text()
    assert 'data-audit-chain="broken"' in index
    page = (project / "registry/reports/domains/hamiltonian-mechanics.html").read_text()
    assert 'data-audit-chain="broken"' in page
    assert f"entry {first} changed" in page


def test_slices_and_flip_rate(report, project: Path):
    html = (project / "registry/reports/domains/pedestrian-perception.html").read_text()
    assert re.search(r'data-chart="slices"[^>]*data-slices="2"', html)
    assert "off_crosswalk: 47/100 passed (47%)" in html
    assert "flip rate (newest)" in html and "31%" in html
    reasons = re.search(r'data-section="unmet">(.*?)</ul>', html, re.S).group(1)
    assert "off_crosswalk" in reasons


def test_hostile_strings_are_escaped(report, project: Path):
    for path in report.pages:
        html = path.read_text()
        assert "<script" not in html.lower(), path
        assert "onerror=alert" not in html.replace("onerror=alert(1)&gt;", ""), path
        assert "<b>Mallory" not in html and "<i>role" not in html
        for tag, attrs in tags(html):
            assert not any(k.startswith("on") for k in attrs), (path, tag, attrs)
            assert tag not in ("img", "script", "iframe", "link"), (path, tag)
    page = (project / "registry/reports/domains/hostile.html").read_text()
    assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt; &amp; co" in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;b&gt;Mallory&lt;/b&gt;" in page


def test_report_works_offline(report):
    for path in report.pages:
        html = path.read_text()
        for tag, attrs in tags(html):
            for key in ("src", "href"):
                value = attrs.get(key) or ""
                assert not re.match(r"^(https?:)?//", value), (path, tag, value)
        assert "@import" not in html and "url(" not in html


def test_cli_report_json(cli, project: Path, db_url: str, tmp_path: Path):
    import json

    from graduation.store import Database

    db = Database(db_url)
    populate(project, db)
    db.dispose()
    out = tmp_path / "elsewhere"
    result = cli("report", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["index"] == str(out / "index.html")
    assert (out / "domains" / "hostile.html").is_file()
    assert data["summary"]["by_domain"]["pedestrian-perception"]["phase"] == "discovery"
    plain = cli("report")
    assert plain.exit_code == 0
    assert str(project / "registry" / "reports" / "index.html") in plain.stdout.replace("\n", "")


def test_cli_report_on_an_empty_registry(cli, project: Path, db_url: str):
    from graduation.store import Database

    Database(db_url).dispose()  # an empty, migrated registry
    result = cli("report", "--json")
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(result.stdout)
    assert data["summary"]["domains"] == 0 and data["summary"]["audit_chain_ok"] is None
    index = Path(data["index"]).read_text()
    assert "No domains registered yet" in index
    assert data["pages"] == [data["index"]]


# -- the real browser ---------------------------------------------------------------------------------
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio"]


@pytest.fixture(scope="session")
def chromium(tmp_path_factory) -> str:
    """Debian's chromium; installed with apt-get when missing (as root), else the browser tests skip."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and cannot be installed here (needs root and apt-get)")
    import fcntl

    # one installer at a time, also across pytest-xdist workers
    lock_path = Path(tempfile.gettempdir()) / "graduation-chromium-install.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        proc = None
        for cmd in (["apt-get", "install", "-y", "--no-install-recommends", "chromium"], ["apt-get", "update"],
                    ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
            if shutil.which("chromium"):
                break
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    found = shutil.which("chromium")
    if not found:
        why = proc.stderr.strip()[-300:] if proc is not None else "unknown"
        pytest.skip(f"chromium could not be installed: {why}")
    return found


class Browser:
    """Headless chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``):
    NUL-separated JSON messages, commands on fd 3, replies and events on fd 4. No extra package needed."""

    def __init__(self, binary: str, width: int = 1280, height: int = 1600) -> None:
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()

        def wire() -> None:  # in the child: the protocol's fds 3 and 4
            os.dup2(cmd_r, 3)
            os.dup2(res_w, 4)

        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=wire,
            close_fds=False)
        os.close(cmd_r)
        os.close(res_w)
        self._buf = b""
        self._next = 0
        self.events: list[dict] = []
        self.width, self.height = width, height
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def _read(self, deadline: float) -> dict:
        import json
        import select
        import time

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._res_r], [], [], left)[0]:
                raise TimeoutError("chromium did not answer over the DevTools pipe")
            chunk = os.read(self._res_r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe: " + self._stderr_tail())
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: bool = False, timeout: float = 20.0, **params) -> dict:
        import json
        import time

        self._next += 1
        msg = {"id": self._next, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, event: str, timeout: float = 20.0) -> dict:
        import time

        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e["method"] == event:
                    return self.events.pop(i)
            self.events.append(self._read(deadline))

    def load(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")
        self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluate failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads since the last ``load``."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append("uncaught: " + d.get("exception", {}).get("description", d.get("text", "")))
            elif e["method"] == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert", "warning"):
                out.append(f"console.{p['type']}: " + " ".join(str(a.get("value", a.get("description")))
                                                              for a in p["args"]))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                out.append(f"log {p['entry']['level']}: {p['entry']['text']} {p['entry'].get('url', '')}")
            elif e["method"] == "Network.loadingFailed":
                out.append(f"load failed: {p.get('errorText')}")
        return out

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def screenshot(self, path: Path) -> None:
        import base64

        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def _stderr_tail(self) -> str:
        try:
            self.proc.wait(timeout=2)
            return self.proc.stderr.read().decode(errors="replace")[-1500:]
        except subprocess.TimeoutExpired:
            return "(still running)"

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._res_r)
        self.proc.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def browser(chromium: str):
    b = Browser(chromium)
    yield b
    b.close()


CHARTS_JS = """JSON.stringify(Array.from(document.querySelectorAll('svg[data-chart]')).map(s => {
  const r = s.getBoundingClientRect();
  return {chart: s.dataset.chart, w: r.width, h: r.height, marks: s.querySelectorAll('[data-mark]').length,
          texts: s.querySelectorAll('text').length};
}))"""


def test_browser_check_catches_a_broken_page(browser: Browser, tmp_path: Path):
    """The checks below must be able to fail: a page that throws, logs an error and loads a missing file."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="missing.png">'
                   '<script>console.error("oops"); throw new Error("boom")</script></body></html>')
    browser.load(bad.as_uri())
    problems = "\n".join(browser.problems())
    assert "boom" in problems and "oops" in problems, problems
    assert "load failed" in problems and "missing.png" in " ".join(browser.requests()), problems


def test_report_in_headless_browser(browser: Browser, report, project: Path):
    import json

    ARTIFACTS.mkdir(exist_ok=True)
    pages = {"index": report.index}
    for name in ("hamiltonian-mechanics", "pedestrian-perception", "hostile"):
        pages[name] = project / "registry" / "reports" / "domains" / f"{name}.html"
    for name, path in pages.items():
        browser.load(path.as_uri())
        assert browser.problems() == [], (name, browser.problems())
        assert browser.requests() == [path.as_uri()], "the page loaded something besides itself"
        assert browser.evaluate("document.querySelectorAll('script').length") == 0
        charts = json.loads(browser.evaluate(CHARTS_JS))
        kinds = [c["chart"] for c in charts]
        # nothing spills out sideways at 1280 px
        assert browser.evaluate("document.documentElement.scrollWidth") <= browser.width, name
        for c in charts:  # laid out, visible, labelled
            assert c["w"] >= 100 and c["h"] >= 28 and (c["chart"] == "sparkline" or c["texts"] >= 5), (name, c)
        if name == "index":
            assert kinds == ["sparkline"] * 3
            assert browser.evaluate("document.querySelectorAll('tr[data-domain]').length") == 3
            continue
        assert kinds[:2] == ["pass-rate", "shape-gap"], (name, kinds)
        pass_rate = charts[0]
        assert pass_rate["w"] >= 900, "the pass-rate chart should span the page"
        if name == "hamiltonian-mechanics":
            assert pass_rate["marks"] == 6 + 1 + 1 + 2  # rounds, band, threshold, the model's line and legend
        if name == "pedestrian-perception":
            assert "slices" in kinds
        if name == "hostile":
            assert browser.evaluate("document.querySelector('h1').textContent") == HOSTILE_TITLE
    for name in ("index", "hamiltonian-mechanics", "pedestrian-perception"):
        browser.load(pages[name].as_uri())
        shot = ARTIFACTS / f"report-{name}.png"
        browser.screenshot(shot)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_one_line_per_model_with_a_legend():
    from graduation.report.svg import RoundPoint, pass_rate_chart

    rounds = [RoundPoint(f"r{i}", 100, p, p / 100, p / 100 - 0.05, min(1.0, p / 100 + 0.05), m)
              for i, (m, p) in enumerate([("a@1", 90), ("a@1", 95), ("b@1", 0), ("a@1", 96), ("b@1", 1)], 1)]
    svg = str(pass_rate_chart(rounds, 0.8))
    lines = re.findall(r'data-mark="model-line" data-model="([^"]+)" points="([^"]+)"', svg)
    assert [(m, len(p.split())) for m, p in lines] == [("a@1", 3), ("b@1", 2)]  # never one line across models
    assert svg.count('data-mark="model-legend"') == 2 and ">a@1</text>" in svg and ">b@1</text>" in svg


def test_the_models_evaluated_are_listed_with_their_lineage(report, project: Path):
    html = (project / "registry/reports/domains/hamiltonian-mechanics.html").read_text()
    models = re.search(r'id="models">(.*?)</section>', html, re.S).group(1)
    assert 'data-model="qwen-0.5b-grpo@1"' in models and "sha256:" in models
    hostile = (project / "registry/reports/domains/hostile.html").read_text()
    assert "<script" not in re.search(r'id="models">(.*?)</section>', hostile, re.S).group(1).lower()
