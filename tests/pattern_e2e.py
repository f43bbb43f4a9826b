"""End-to-end checks that every pattern answering at once shares, written once.

A pattern's ``tests/test_e2e.py`` imports them by name; pytest then runs them there, with that
module's ``stack`` fixture and its ``e2e`` mark.
"""

from tests.compose_stack import ComposeStack


def test_locust_smoke_load_has_no_failures(stack: ComposeStack) -> None:
    total = stack.locust_smoke()["Aggregated"]
    assert total["requests"] > 0
    assert total["failures"] == 0


def test_readme_examples_answer_as_quoted(stack: ComposeStack) -> None:
    assert stack.readme_example_problems() == []
