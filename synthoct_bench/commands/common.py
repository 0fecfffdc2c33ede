"""Options and parsers shared by the `synthoct` subcommands, so each concept has one spelling.

    --no-progress             no progress bars
    --generator-arg KEY=VALUE extra generator keyword (repeatable)
    --noise N / --noise-levels 0,1,9,18,49
    --json [PATH]             JSON to a file, or to stdout in place of the text
    --amp auto|on|off         the ResNet18's mixed precision

Every subcommand's parser uses :class:`HelpFormatter`, which shows each option's
default in ``--help``; help strings therefore never spell out a default themselves
(a ``None`` default that means something, such as "the stored size", is described in
the help text, since the formatter does not print ``None``).
"""

from __future__ import annotations

import argparse
import json

__all__ = [
    "AMP_CHOICES",
    "HelpFormatter",
    "add_amp_flag",
    "default_text",
    "key_value",
    "add_progress_flag",
    "add_generator_arg",
    "add_noise_levels",
    "add_json_flag",
    "run_subcommand",
    "emit_result",
]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with every option's default (``argparse.ArgumentDefaultsHelpFormatter``),
    but leaving out absent values and off switches (``None``, ``False``, ``[]``), since
    "(default: None)" says nothing, and writing a sequence as it is typed (``-3 3 7``)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default is argparse.SUPPRESS
            or default is None
            or default is False
            or default == []
            or not action.option_strings
        ):
            return text
        shown = default_text(default)
        return f"{text} (default: {shown.replace('%', '%%')})".lstrip()


def default_text(default: object) -> str:
    """A default as ``--help`` shows it: sequences space-separated, as they are typed."""
    if isinstance(default, list | tuple):
        return " ".join(str(v) for v in default)
    return str(default)


def key_value(text: str) -> tuple[str, object]:
    """Parse ``KEY=VALUE``; VALUE is read as JSON when it can be (``3``, ``true``,
    ``[1, 2]``), else kept as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


#: ``--amp`` choices and the ResNet18's ``amp`` parameter each stands for.
AMP_CHOICES: dict[str, bool | None] = {"auto": None, "on": True, "off": False}


def add_amp_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--amp auto|on|off``: the ResNet18's mixed precision (``AMP_CHOICES[args.amp]``)."""
    parser.add_argument(
        "--amp",
        choices=list(AMP_CHOICES),
        default="auto",
        help="ResNet18 mixed precision: auto (on for GPUs, fp16 where they lack bf16, and "
        "for CPUs with native bf16), on, or off (fp32)",
    )


def add_progress_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--no-progress``: the one spelling of "no progress bars"."""
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_generator_arg(parser: argparse.ArgumentParser) -> None:
    """``--generator-arg KEY=VALUE`` (repeatable) into ``args.generator_arg``, a list of
    (key, value) pairs: ``dict(args.generator_arg)`` gives the generator's keywords."""
    parser.add_argument(
        "--generator-arg",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="extra generator keyword (VALUE parsed as JSON when it can be); repeatable",
    )


def add_noise_levels(parser: argparse.ArgumentParser, default: str = "0,1,9,18,49") -> None:
    """``--noise-levels`` as text; the command parses it with
    ``synthoct_bench.dataset.layout.parse_noise_levels`` (a ValueError: one line, exit 2)."""
    parser.add_argument(
        "--noise-levels",
        default=default,
        metavar="K,K,...",
        help="noise levels sigma2, comma-separated non-negative integers",
    )


def add_json_flag(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    """``--json [PATH]``: JSON to PATH, or to stdout (no PATH, or ``-``) in place of text."""
    from synthoct_bench.commands.checks import output_file

    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        type=output_file,
        metavar="PATH",
        help=f"write {what} as JSON to PATH, or to stdout (no PATH or '-') instead of the text",
    )


def add_rank_world(parser: argparse.ArgumentParser) -> None:
    """``--rank`` and ``--world``: this machine's share of work split over machines."""
    from synthoct_bench.commands.checks import Integer

    parser.add_argument(
        "--rank",
        type=Integer(0, 10**6),
        default=None,
        help="this machine's rank (unset: RANK or SLURM_ARRAY_TASK_ID, else 0)",
    )
    parser.add_argument(
        "--world",
        type=Integer(1, 10**6 + 1),
        default=None,
        help="number of machines (unset: WORLD_SIZE or SLURM_ARRAY_TASK_COUNT, else 1)",
    )


def run_subcommand(args: argparse.Namespace, family: str) -> int:
    """Run the subcommand a ``synthoct FAMILY SUBCOMMAND`` command parsed into
    ``args._FAMILY_run``; with none given, print the family's help and exit 2."""
    chosen = getattr(args, f"_{family}_run", None)
    if chosen is None:
        getattr(args, f"_{family}_parser").print_help()
        return 2
    return int(chosen(args) or 0)


def emit_result(args: argparse.Namespace, result: object) -> None:
    """Print ``result`` (an object with ``to_dict`` and ``summary``) as strict JSON on
    stdout for ``--json -``; else its summary, and the JSON written atomically to
    ``--json PATH`` when given."""
    text = json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n"  # type: ignore[attr-defined]
    if args.json == "-":
        print(text, end="")
        return
    print(result.summary())  # type: ignore[attr-defined]
    if args.json:
        from synthoct_bench.atomic import write_text

        write_text(args.json, text)
        print(f"json: {args.json}")
