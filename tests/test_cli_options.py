"""Every subcommand's options: defaults shown in --help, one spelling per concept, --version."""

from __future__ import annotations

import argparse
from collections import defaultdict

import pytest

import synthoct_bench
from synthoct_bench.cli import COMMANDS, build_parser, main
from synthoct_bench.commands.checks import NOISE_LEVEL, output_file, output_folder
from synthoct_bench.commands.common import HelpFormatter, default_text

#: concept -> (its one spelling, spellings no command may use for it).
SPELLINGS: dict[str, tuple[str, set[str]]] = {
    "progress bars off": (
        "--no-progress",
        {"--quiet", "-q", "--silent", "--progress", "--no-progress-bar", "--no-tqdm"},
    ),
    "generator keywords": (
        "--generator-arg",
        {"--generator-kwargs", "--generator-args", "--generator-kwarg", "--gen-arg"},
    ),
    "one noise level": ("--noise", {"--sigma2", "--sigma", "--level", "--noise-level"}),
    "several noise levels": ("--noise-levels", {"--levels", "--sigma2s", "--noise-level-list"}),
}


#: options whose type may differ by command, and why
KIND_MAY_DIFFER: dict[str, str] = {
    "--out": "where a command writes: a folder for many files (build, demo), a file for one "
    "(a submission, a traversal PNG)",
}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


SUBPARSERS = _subparsers()


def _shows_default(action: argparse.Action) -> bool:
    d = action.default
    return bool(action.option_strings) and d not in (None, False, [], argparse.SUPPRESS)


def test_every_command_is_walked():
    assert set(SUBPARSERS) == set(COMMANDS)
    for name in ("reproduce", "build", "demo"):
        assert any(_shows_default(a) for a in SUBPARSERS[name]._actions), name


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_shows_every_default_once(name):
    parser = SUBPARSERS[name]
    assert parser.formatter_class is HelpFormatter
    flat = "".join(parser.format_help().split())
    for action in parser._actions:
        own = action.help or ""
        # The formatter adds the default: a help string never writes one itself.
        assert "(default" not in own, (name, action.option_strings, own)
        if not _shows_default(action):
            continue
        assert "default" not in own.lower(), (name, action.option_strings, own)
        shown = "(default:" + "".join(default_text(action.default).split()) + ")"
        assert flat.count(shown) >= 1, (name, action.option_strings, shown)
        expanded = parser._get_formatter()._expand_help(action)
        assert expanded.count("(default:") == 1, (name, action.option_strings, expanded)


def test_one_spelling_per_concept():
    by_option: dict[str, dict[str, argparse.Action]] = defaultdict(dict)
    by_dest: dict[str, set[str]] = defaultdict(set)
    for name, parser in SUBPARSERS.items():
        for action in parser._actions:
            for option in action.option_strings:
                by_option[option][name] = action
            if action.option_strings and action.dest != "help":
                by_dest[action.dest].add(max(action.option_strings, key=len))
    for concept, (spelling, banned) in SPELLINGS.items():
        assert spelling in by_option, concept
        used = banned & set(by_option)
        assert not used, f"{concept}: spell it {spelling}, not {sorted(used)}"
    # A destination is reached by one spelling everywhere ...
    for dest, options in by_dest.items():
        assert len(options) == 1, f"{dest} is spelled {sorted(options)}"
    # ... and an option means the same kind of thing in every command that has it.
    for option, actions in by_option.items():
        if option in KIND_MAY_DIFFER:
            continue
        kinds = {
            name: (
                type(a).__name__,
                getattr(a.type, "__name__", a.type),
                a.nargs,
                a.const,
                tuple(a.choices) if a.choices else None,
            )
            for name, a in actions.items()
        }
        assert len(set(kinds.values())) == 1, f"{option} differs across commands: {kinds}"
    assert by_option["--noise"]["score"].type is NOISE_LEVEL
    assert by_option["--noise"]["baseline"].type is NOISE_LEVEL
    outs = {name: by_option["--out"][name].type for name in by_option["--out"]}
    assert set(outs.values()) == {output_file, output_folder}, outs


def test_generator_arg_is_shared_by_build_and_traversal():
    parsed = {}
    for name, extra in (("build", ["--out", "x"]), ("traversal", [])):
        args = SUBPARSERS[name].parse_args(
            [*extra, "--generator-arg", "eta_visibility=0.5", "--generator-arg", "mode=fast"]
        )
        parsed[name] = dict(args.generator_arg)
    assert parsed["build"] == parsed["traversal"] == {"eta_visibility": 0.5, "mode": "fast"}
    with pytest.raises(SystemExit):
        SUBPARSERS["traversal"].parse_args(["--generator-arg", "no-equals-sign"])


def test_progress_flag_everywhere_it_applies():
    for name in ("build", "demo", "reproduce", "baseline"):
        assert SUBPARSERS[name].parse_args(_required(name) + ["--no-progress"]).no_progress


class _Reached(Exception):
    """Raised by a stand-in to hand back what a command passed on."""


def _reach(value):
    raise _Reached(value)


def test_amp_flag_is_shared_by_baseline_and_demo_and_reaches_the_resnet(monkeypatch):
    from synthoct_bench.commands import baseline, demo

    for name in ("baseline", "demo"):
        assert SUBPARSERS[name].parse_args(_required(name)).amp == "auto"
        with pytest.raises(SystemExit):
            SUBPARSERS[name].parse_args(_required(name) + ["--amp", "fp16"])
    monkeypatch.setattr(
        "synthoct_bench.baselines.run.run_baseline",
        lambda *a, **kw: _reach(kw["params"]["amp"]),
    )
    monkeypatch.setattr("synthoct_bench.demo.run_demo", lambda config, log=None: _reach(config.amp))
    argv = ["resnet18", "--data", "org/d", "--noise", "9", "--out", "p.parquet"]
    for flag, amp in (("off", False), ("on", True), ("auto", None)):
        with pytest.raises(_Reached) as reached:
            baseline.run(SUBPARSERS["baseline"].parse_args([*argv, "--amp", flag]))
        assert reached.value.args[0] is amp
        with pytest.raises(_Reached) as reached:
            demo.run(SUBPARSERS["demo"].parse_args(["--amp", flag]))
        assert reached.value.args[0] is amp


def _required(name: str) -> list[str]:
    return {
        "build": ["--out", "x"],
        "baseline": ["average", "--data", "org/d", "--noise", "9", "--out", "p.parquet"],
    }.get(name, [])


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"synthoct-bench {synthoct_bench.__version__}"
