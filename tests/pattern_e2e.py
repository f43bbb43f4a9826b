"""End-to-end checks that every pattern answering at once shares, written once.

A pattern's ``tests/test_e2e.py`` imports them by name; pytest then runs them there, with that
module's ``stack`` fixture and its ``e2e`` mark.
"""

from tests.compose_stack import ComposeStack


def test_smoke_load(stack: ComposeStack) -> None:
    """A short Locust run of the pattern's scenario: requests made, none failed."""
    total = stack.locust_smoke()["Aggregated"]
    assert total["requests"] > 0
    assert total["failures"] == 0


def test_readme_examples(stack: ComposeStack) -> None:
    """The README's marked examples, run against the stack, answer as quoted."""
    assert stack.readme_example_problems() == []
