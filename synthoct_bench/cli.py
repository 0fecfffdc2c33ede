"""The `synthoct` command: one subcommand per module in ``synthoct_bench.commands``.

Each command module defines ``HELP`` (one line), ``configure(parser)`` and
``run(args) -> int``. Modules are imported only when their command runs, so
``synthoct --help`` stays fast and torch is not loaded for NLME-only work.
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
    "baseline": "synthoct_bench.commands.baseline",
    "demo": "synthoct_bench.commands.demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synthoct",
        description="Synthetic OCT + NLME longitudinal benchmark: build, load, score.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_path in COMMANDS.items():
        module = importlib.import_module(module_path)
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
