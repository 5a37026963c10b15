"""Verifier kinds, the registry, and bad declarations."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from graduation.errors import VerifierError
from graduation.spec import VerifierSpec
from graduation.verifiers import Verdict, build, kinds, verifier


def make(kind: str, root=None, role: str = "substance", **options):
    return build(VerifierSpec(name="v", kind=kind, role=role, options=options), root)


def test_exact_normalisation_and_extraction():
    v = make("exact")
    assert v("  Paris ", "paris").verdict == "pass"
    assert v("Lyon", "Paris").verdict == "fail"
    assert make("exact", case_sensitive=True)("paris", "Paris").verdict == "fail"
    assert make("exact", strip_punctuation=True)("Paris.", "Paris").verdict == "pass"
    boxed = make("exact", extract=r"\\boxed\{([^}]*)\}")
    assert boxed("so \\boxed{12} and finally \\boxed{42}", "42").passed
    assert boxed("no box", "42").verdict == "fail"


def test_regex_is_re2_and_can_use_the_reference():
    v = make("regex", role="format", pattern=r"^\$.*\$$")
    assert v("$x^2$", None).passed and not v("x^2", None).passed
    ref = make("regex", pattern=r"Answer: {reference}$")
    assert ref("Answer: 3.5", "3.5").passed and not ref("Answer: 3x5", "3.5").passed
    evil = make("regex", pattern=r"(a+)+$")  # catastrophic in backtracking engines, linear in re2
    assert evil("a" * 100_000 + "!", None).verdict == "fail"
    with pytest.raises(VerifierError, match="invalid regular expression"):
        make("regex", pattern="(unclosed")
    with pytest.raises(VerifierError, match="invalid regular expression"):
        make("regex", pattern=r"(a)\1")  # backreferences are not linear-time: re2 refuses them


def test_numeric_tolerances():
    v = make("numeric", abs_tol=0.01)
    assert v("3.141", "3.14").passed
    assert not v("3.2", "3.14").passed
    assert v("The answer is 1,234.5 apples", 1234.5).passed
    assert make("numeric", rel_tol=0.01, abs_tol=0)("101", "100").passed
    assert v("1/4", "0.25").passed and v("25%", "0.25").passed
    assert v("no number", "1").verdict == "fail"
    assert v("1", "not a number").verdict == "error"
    with pytest.raises(VerifierError):
        make("numeric", abs_tol=-1)


def test_json_schema(tmp_path):
    schema = {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}
    v = make("json_schema", role="format", schema=schema)
    assert v('{"a": 1}', None).passed
    assert "schema violation" in v('{"a": "x"}', None).explanation
    assert v("not json", None).verdict == "fail"
    assert v("[" * 100_000 + "]" * 100_000, None).verdict == "fail"
    (tmp_path / "s.json").write_text(json.dumps(schema))
    exact = make("json_schema", root=tmp_path, schema_file="s.json", match_reference=True)
    assert exact('{"a": 1}', {"a": 1}).passed and not exact('{"a": 2}', '{"a": 1}').passed
    with pytest.raises(VerifierError, match="exactly one"):
        make("json_schema")


def test_python_and_command_kinds(tmp_path):
    (tmp_path / "checks.py").write_text(textwrap.dedent("""
        def score(output, reference, row):
            return 1.0 if output.strip() == reference else 0.25
    """))
    from graduation.verifiers.pool import VerifierPool

    v = make("python", root=tmp_path, function="checks:score")
    # domain code never runs in this process: only in the sandboxed pool
    assert "only in the sandboxed worker pool" in v("7", "7").explanation
    with pytest.raises(VerifierError, match="no module 'nope'"):
        make("python", root=tmp_path, function="nope:score")
    script = tmp_path / "judge.py"
    script.write_text("import json,sys\nd=json.load(sys.stdin)\nprint(json.dumps({'pass': d['output']==d['reference']}))\n")
    cmd = make("command", root=tmp_path, argv=[sys.executable, str(script)])
    slow = make("command", root=tmp_path, argv=[sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.3)
    assert cmd("x", "x").verdict == "error"
    with VerifierPool(1, timeout=5) as pool:
        assert pool.verify(v, [("7", "7")])[0].passed
        assert pool.verify(v, [("8", "7")])[0] == Verdict("fail", 0.25, None, "score 0.25 < 1")
        assert pool.verify(cmd, [("x", "x")])[0].passed and pool.verify(cmd, [("x", "y")])[0].verdict == "fail"
        assert pool.verify(slow, [("x", "x")])[0].verdict == "error"


def test_unknown_kinds_and_options_are_named():
    with pytest.raises(VerifierError, match="did you mean 'exact'"):
        make("exakt")
    with pytest.raises(VerifierError, match="unknown option 'case_sensitiv'.*did you mean 'case_sensitive'"):
        make("exact", case_sensitiv=True)
    with pytest.raises(VerifierError, match="missing option 'pattern'"):
        make("regex")


def test_every_builtin_kind_is_listed_and_plugins_register_by_decorator():
    assert {"exact", "regex", "numeric", "math", "json_schema", "python", "command", "reasoning_gym"} <= set(kinds())

    @verifier("test_even", isolated=False)
    def even():
        def check(output, reference, row=None):
            return Verdict.of(int(output) % 2 == 0)
        return check

    v = make("test_even")
    assert v("4", None).passed and not v("3", None).passed
    assert v("x", None).verdict == "error"  # an exception inside a check is an error verdict


def test_math_kind_in_process():
    v = make("math")
    assert v("The answer is $\\frac{1}{2}$", "0.5").passed
    assert v("x = $2x + 2$", "2(x+1)").passed
    assert v("$3$", "2").verdict == "fail"


def test_identity_depends_on_options_and_version():
    a = build(VerifierSpec(name="a", kind="exact", role="substance"))
    b = build(VerifierSpec(name="b", kind="exact", role="substance"))
    c = build(VerifierSpec(name="a", kind="exact", role="substance", version="2"))
    d = build(VerifierSpec(name="a", kind="exact", role="substance", options={"case_sensitive": True}))
    assert a.identity == b.identity
    assert len({a.identity, c.identity, d.identity}) == 3


def test_plugin_kinds_load_from_the_entry_point_group(monkeypatch):
    from importlib import metadata

    from graduation.verifiers import base

    class FakeEntryPoint:
        name = "test_plugin_len"
        value = "tests:fake"

        def load(self):
            def factory(*, at_most: int = 3):
                def check(output, reference, row=None):
                    return Verdict.of(len(output) <= at_most)
                return check
            return factory

    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [FakeEntryPoint()]
                        if group == base.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(base, "_plugins_loaded", False)
    monkeypatch.delitem(base._KINDS, "test_plugin_len", raising=False)
    v = make("test_plugin_len", at_most=2)
    assert v("ab", None).passed and not v("abc", None).passed
    assert v.isolated  # plugin kinds run in the pool unless they say otherwise
    assert "test_plugin_len" in kinds()


def test_editing_a_python_verifier_changes_its_identity(tmp_path, monkeypatch):
    module = tmp_path / "edited_check.py"
    module.write_text("def check(output, reference, row):\n    return True\n")
    first = make("python", root=tmp_path, function="edited_check:check")
    module.write_text("def check(output, reference, row):\n    return output == reference\n")
    assert "edited_check" not in sys.modules  # hashed from disk, never imported in this process
    second = make("python", root=tmp_path, function="edited_check:check")
    assert first.identity != second.identity


def test_python_modules_of_the_same_name_in_two_projects_do_not_mix(tmp_path):
    for name, value in (("one", "1.0"), ("two", "0.0")):
        root = tmp_path / name
        root.mkdir()
        (root / "samename.py").write_text(f"def score(output, reference, row):\n    return {value}\n"
                                          f"def only_{name}(output, reference, row):\n    return True\n")
    from graduation.verifiers.pool import VerifierPool

    first = make("python", root=tmp_path / "one", function="samename:score")
    second = make("python", root=tmp_path / "two", function="samename:only_two")
    with VerifierPool(1, timeout=5) as pool:
        assert pool.verify(first, [("x", "y")])[0].verdict == "pass"
        assert pool.verify(second, [("x", "y")])[0].verdict == "pass"


def test_a_verifier_identity_names_the_versions_of_the_packages_its_kind_runs(monkeypatch):
    """The verdict cache keys on a verifier's identity: a verdict math-verify gave must not answer for another
    release of it (the domain's own identity already names the version; this is the cache's side)."""
    import importlib.metadata

    from graduation.verifiers.base import build

    spec = {"name": "m", "kind": "math", "role": "substance"}
    before = build(spec)
    assert dict(before.packages) == {"math-verify": importlib.metadata.version("math-verify")}
    assert build(spec).identity == before.identity
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.0.1-other")
    assert build(spec).identity != before.identity
    assert build({"name": "e", "kind": "exact", "role": "substance"}).packages == ()
