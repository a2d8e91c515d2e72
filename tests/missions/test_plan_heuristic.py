"""plan_from_spec: a plan with no model, by written rules, that the compiler accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus.missions.plan import compile_plan, plan_from_spec
from nexus.missions.spec import parse_spec, read_spec

SPECS = Path(__file__).parent / "specs"

MULTI = """# shop: an online shop

## Requirements

### Cart

- R1: `add(item)` MUST put the item in `src/shop/cart.py`'s `Cart`.
- R2: The cart SHOULD keep items sorted.

### Checkout

- R3: `checkout()` MUST charge the card; the charge code lives in `src/shop/pay.py`.
- R4: A checkout MUST empty the cart in `src/shop/cart.py` and log to `tests/test_checkout.py`.

### Receipts

- R5: A receipt MUST be e-mailed.

### Receipts!

- R6: A receipt MAY be printed.
"""


def test_the_durations_spec_plans_one_module_with_its_tests() -> None:
    spec = read_spec(SPECS / "durations.md")
    plan = plan_from_spec(spec, checks=["tests", "lint"])
    (item,) = plan.items
    assert item.id == "durations"
    assert item.owns == ("durations.py",)
    assert item.tests == ("tests/test_durations.py",)
    assert item.requirements == ("R1", "R2", "R3", "R4", "R5")
    assert item.checks == ("tests", "lint")
    assert plan.unmet == ()


def test_a_package_under_src_gets_the_new_module() -> None:
    spec = read_spec(SPECS / "durations.md")
    files = ["src/spans/__init__.py", "src/spans/core.py", "README.md"]
    (item,) = plan_from_spec(spec, files=files).items
    assert item.owns == ("src/spans/durations.py",)


def test_sections_become_items_and_named_files_are_owned_once() -> None:
    spec = parse_spec(MULTI, source="shop.md")
    plan = plan_from_spec(spec, files=["src/shop/__init__.py", "src/shop/cart.py"])
    by_id = {i.id: i for i in plan.items}
    assert list(by_id) == ["cart", "checkout", "receipts", "receipts-2"]
    assert by_id["cart"].owns == ("src/shop/cart.py",)
    assert by_id["cart"].requirements == ("R1", "R2")
    # checkout names cart.py too: cart owns it, so checkout needs cart
    assert by_id["checkout"].owns == ("src/shop/pay.py",)
    assert by_id["checkout"].needs == ("cart",)
    assert by_id["checkout"].tests == ("tests/test_checkout.py",)
    # no file named: a new module in the one package
    assert by_id["receipts"].owns == ("src/shop/receipts.py",)
    assert by_id["receipts-2"].owns == ("src/shop/receipts_2.py",)
    assert by_id["receipts-2"].tests == ("tests/test_receipts_2.py",)
    assert plan.order() == (("cart", "receipts", "receipts-2"), ("checkout",))


def test_a_name_that_ends_one_repository_file_means_that_file() -> None:
    spec = parse_spec("# x\n\n## Store\n\n- S1: `store.py` MUST save.\n", source="x.md")
    (item,) = plan_from_spec(spec, files=["lib/app/store.py", "lib/app/__init__.py"]).items
    assert item.owns == ("lib/app/store.py",)


def test_hostile_names_in_the_spec_are_never_owned() -> None:
    text = (
        "# x\n\n## Hooks\n\n"
        "- H1: It MUST NOT touch `../../etc/passwd.py`, `.git/hooks/post.sh` or `/abs/x.py`.\n"
    )
    spec = parse_spec(text, source="x.md")
    (item,) = plan_from_spec(spec).items
    assert all(".." not in p and ".git" not in p and not p.startswith("/") for p in item.owns)
    assert item.owns == ("hooks.py",)


def test_the_plan_passes_the_compiler_as_an_answer() -> None:
    spec = parse_spec(MULTI, source="shop.md")
    files = ["src/shop/__init__.py", "src/shop/cart.py"]
    plan = plan_from_spec(spec, files=files, checks=["tests"])
    again = compile_plan(plan.to_data(), spec=spec, files=files, checks=["tests"])
    assert again == plan


@pytest.mark.parametrize("limit", [1, 2])
def test_sections_past_the_limit_join_the_last_item(limit: int) -> None:
    spec = parse_spec(MULTI, source="shop.md")
    plan = plan_from_spec(spec, max_items=limit)
    assert len(plan.items) == limit
    claimed = [r for i in plan.items for r in i.requirements]
    assert sorted(claimed) == sorted(r.id for r in spec.requirements)
