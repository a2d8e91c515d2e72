"""The gate: envelopes, advisory checks, and feedback bounded whatever the checks print."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.missions.verify import CheckResult, CheckSpec, Diagnostic, Verdict, gate
from nexus.missions.verify._gate import FEEDBACK_CHARS, PER_CHECK


def _result(
    name: str, passed: bool, found: list[Diagnostic] | None = None, *, required: bool = True
) -> CheckResult:
    spec = CheckSpec(name=name, kind="command", command=("x",), required=required)
    return CheckResult.make(spec, passed=passed, diagnostics=found or [])


def _d(check: str, message: str, line: int = 1) -> Diagnostic:
    return Diagnostic(check, "a.py", line, "E1", message)


def test_every_required_check_must_pass_without_an_envelope() -> None:
    results = [
        _result("lint", True),
        _result("tests", False, [_d("tests", "test_x failed")]),
        _result("docs", False, [_d("docs", "no docstring")], required=False),
    ]
    verdict = gate(results)
    assert not verdict.accepted
    assert verdict.failed == ["tests"]
    assert verdict.advisory == ["docs"]
    assert set(verdict.diagnostics) == {"tests", "docs"}
    assert "## The gate rejected this attempt" in verdict.feedback
    assert "`a.py:1` [E1] test_x failed" in verdict.feedback
    assert verdict.feedback.index("### tests") < verdict.feedback.index("## Advisory")


def test_an_envelope_decides_what_must_pass() -> None:
    results = [_result("lint", False, [_d("lint", "bad")]), _result("tests", True)]
    assert gate(results, envelope=["tests"]).accepted
    verdict = gate(results, envelope=["tests", "lint"])
    assert not verdict.accepted
    assert verdict.failed == ["lint"]


def test_an_envelope_check_that_did_not_run_fails() -> None:
    verdict = gate([_result("lint", True)], envelope=["lint", "types"])
    assert not verdict.accepted
    assert verdict.failed == ["types"]
    assert verdict.diagnostics["types"][0].code == "not-run"


def test_an_accepted_verdict_lists_what_passed() -> None:
    verdict = gate([_result("lint", True), _result("tests", True)])
    assert verdict.accepted
    assert verdict.failed == []
    assert "Passed: lint, tests." in verdict.feedback


def test_verdicts_round_trip() -> None:
    verdict = gate([_result("tests", False, [_d("tests", "boom\nline two")])])
    assert Verdict.from_data(verdict.to_data()) == verdict


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[a-z]{1,10}", fullmatch=True),
            st.lists(st.text(min_size=0, max_size=3000), max_size=30),
        ),
        max_size=8,
        unique_by=lambda t: t[0],
    )
)
def test_feedback_is_bounded_and_shows_a_few_per_check(
    checks: list[tuple[str, list[str]]],
) -> None:
    results = [
        _result(name, False, [_d(name, m, i) for i, m in enumerate(messages)])
        for name, messages in checks
    ]
    verdict = gate(results)
    assert len(verdict.feedback) <= FEEDBACK_CHARS + 100
    assert verdict.accepted is (not checks)
    for name, messages in checks:
        if len(messages) > PER_CHECK and f"### {name} (" in verdict.feedback:
            section = verdict.feedback.split(f"### {name} (", 1)[1].split("\n### ", 1)[0]
            assert f"and {len(messages) - PER_CHECK} more" in section or "feedback cut" in section
