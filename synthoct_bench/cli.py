"""The `synthoct` command: one subcommand per module in ``synthoct_bench.commands``.

Each command module defines ``HELP`` (one line), ``configure(parser)`` and
``run(args) -> int``. Modules are imported only when their command runs, so
``synthoct --help`` stays fast and torch is not loaded for NLME-only work.

Every flag's value is checked where it is parsed (:mod:`synthoct_bench.commands.checks`);
a bad one is one line, ``synthoct CMD: error: argument --FLAG: ...``, and exit status 2.
A command signals bad input found later by raising ``ValueError`` (or ``OSError`` for files);
:func:`main` turns it into one line on stderr naming the problem, and exit
status 2. ``synthoct --debug COMMAND ...`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: command name -> module path; each module holds HELP, configure() and run().
COMMANDS: dict[str, str] = {
    "reproduce": "synthoct_bench.commands.reproduce",
    "score": "synthoct_bench.commands.score",
    "build": "synthoct_bench.commands.build",
    "verify": "synthoct_bench.commands.verify",
    "push": "synthoct_bench.commands.push",
    "traversal": "synthoct_bench.commands.traversal",
    "vae": "synthoct_bench.commands.vae",
    "diffusion": "synthoct_bench.commands.diffusion",
    "baseline": "synthoct_bench.commands.baseline",
    "demo": "synthoct_bench.commands.demo",
}


#: Exceptions that mean the input is wrong, not the program: one line and exit 2.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)


def version_text() -> str:
    """What ``synthoct --version`` prints: ``synthoct-bench X.Y.Z``."""
    from synthoct_bench import __version__

    return f"synthoct-bench {__version__}"


def build_parser() -> argparse.ArgumentParser:
    """The ``synthoct`` parser: every subcommand's help shows its defaults."""
    from synthoct_bench.commands.checks import OneLineParser
    from synthoct_bench.commands.common import HelpFormatter

    parser = OneLineParser(
        prog="synthoct",
        description="Synthetic OCT + NLME longitudinal benchmark: build, load, score.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_path in COMMANDS.items():
        module = importlib.import_module(module_path)
        command_parser = sub.add_parser(
            name, help=module.HELP, description=module.HELP, formatter_class=HelpFormatter
        )
        module.configure(command_parser)
        command_parser.set_defaults(_run=module.run)
        _name_leaves(command_parser)
    return parser


def _name_leaves(parser: argparse.ArgumentParser) -> None:
    """Record each parser's ``prog`` (``synthoct vae train``) as ``args._prog``, so an
    error names the command the user typed; the innermost parser's default wins."""
    parser.set_defaults(_prog=parser.prog)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _name_leaves(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except USER_ERRORS as exc:
        if args.debug:
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{args._prog}: error: {message}", file=sys.stderr)
        return 2
    except ImportError as exc:
        from synthoct_bench.extras import extra_for

        missing = extra_for(exc)
        if missing is None or args.debug:
            raise
        print(f"{args._prog}: error: {missing}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"{args._prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
