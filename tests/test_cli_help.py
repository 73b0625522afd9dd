"""The command line explains itself: every option has help with its default, in plain words."""

import argparse

import pytest

from qfitlatent.cli import build_parser


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_option_has_help_that_names_its_default(name):
    sub = subcommands()[name]
    text = sub.format_help()
    assert "SPEC" not in text and "§" not in text  # no internal document names
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{name} {action.dest} has no help"
        flags = "/".join(action.option_strings) or action.dest
        meaningful = not (action.default is None or action.default is False
                          or action.default == [] or not action.option_strings)  # fmt: skip
        if meaningful:  # the formatter appends it …
            assert f"(default: {action.default})" in sub._get_formatter()._get_help_string(
                action) % {"default": action.default}, flags  # fmt: skip
        elif action.option_strings and action.default is None and not action.required:
            # … and an option decided elsewhere says what happens when it is left out.
            assert "default" in action.help, flags


def test_predict_help_shows_numbers_and_sample_is_documented():
    from qfitlatent.ensemble.multiconf import SplitOptions

    text = " ".join(subcommands()["predict"].format_help().split())  # unwrapped
    assert "(default: 10)" in text and "(default: 0)" in text
    # The split defaults are the ones predict uses (the help once said 0.5 after they changed).
    split = SplitOptions().resolved()  # without a map
    assert f"at least this (default: {split.threshold:g};" in text
    assert f"included (default: {split.max_conformers})" in text
    assert "<name>_multiconformer.pdb" in text
    top = build_parser().format_help()
    assert "sample" in top and "another name for predict" in top
