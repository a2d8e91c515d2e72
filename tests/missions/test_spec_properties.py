"""Stable ids, as properties: an unchanged requirement keeps its id whatever happens around it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.missions.spec import normalise, parse_spec

_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
_TEXT = st.lists(_WORD, min_size=1, max_size=6).map(lambda ws: " ".join([ws[0], "MUST", *ws[1:]]))
_SECTIONS = st.lists(st.lists(_TEXT, min_size=1, max_size=4), min_size=1, max_size=5).filter(
    lambda secs: len({normalise(t) for s in secs for t in s}) == sum(map(len, secs))
)


def render(sections: list[list[str]]) -> str:
    parts = ["# Spec\n"]
    for i, texts in enumerate(sections):
        parts.append(f"\n## Part {i}\n\n" + "".join(f"- {t}\n" for t in texts))
    return "".join(parts)


def ids(sections: list[list[str]]) -> dict[str, str]:
    spec = parse_spec(render(sections), source="p.md")
    return {r.text: r.id for r in spec.requirements}


@settings(max_examples=60, deadline=None)
@given(_SECTIONS, st.randoms(use_true_random=False))
def test_moving_sections_and_items_keeps_every_id(sections: list[list[str]], rnd: object) -> None:
    before = ids(sections)
    moved = [list(s) for s in sections]
    rnd.shuffle(moved)  # type: ignore[attr-defined]
    for texts in moved:
        rnd.shuffle(texts)  # type: ignore[attr-defined]
    assert ids(moved) == before


@settings(max_examples=60, deadline=None)
@given(_SECTIONS, _TEXT, st.data())
def test_inserting_a_requirement_keeps_the_others_ids(
    sections: list[list[str]], extra: str, data: st.DataObject
) -> None:
    before = ids(sections)
    if normalise(extra) in {normalise(t) for t in before}:
        return
    where = data.draw(st.integers(0, len(sections)))
    grown = [list(s) for s in sections]
    if where == len(sections):
        grown.append([extra])
    else:
        grown[where].insert(data.draw(st.integers(0, len(grown[where]))), extra)
    after = ids(grown)
    assert {t: after[t] for t in before} == before
    assert after[extra] not in before.values()


@settings(max_examples=60, deadline=None)
@given(_SECTIONS, _WORD, st.data())
def test_editing_one_requirement_changes_its_id_only(
    sections: list[list[str]], word: str, data: st.DataObject
) -> None:
    before = ids(sections)
    s = data.draw(st.integers(0, len(sections) - 1))
    i = data.draw(st.integers(0, len(sections[s]) - 1))
    old = sections[s][i]
    new = f"{old} {word}"
    if normalise(new) in {normalise(t) for t in before}:
        return
    edited = [list(x) for x in sections]
    edited[s][i] = new
    after = ids(edited)
    assert after[new] != before[old]
    assert {t: after[t] for t in before if t != old} == {
        t: v for t, v in before.items() if t != old
    }
