"""Every flag of every subcommand walked with bad values (zero, negative, huge, not a
number, a missing path, a file where a folder is expected, an unknown name): each is
refused with one line that names the problem, exit status 2, within a few seconds, and
never a traceback. A new flag fails ``test_every_flag_is_walked`` until it is given a
checked type (``synthoct_bench.commands.checks``), choices, or a row below."""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path

import pytest

from synthoct_bench.cli import build_parser, main
from synthoct_bench.commands.common import key_value

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: how long a refusal may take (the parse, or the checks a command makes before work)
SECONDS = 5.0

#: each leaf command with arguments that make it valid and tiny, so a bad value that
#: slipped through would run (exit 0 or take long) and fail the walk
BASE: dict[str, list[str]] = {
    "reproduce": ["--n", "50", "--no-encoder", "--n-bootstrap", "10", "--noise-levels", "0"],
    "score": [
        "--data",
        "{data}",
        "--predictions",
        "{sub}",
        "--noise",
        "9",
        "--n-bootstrap",
        "10",
        "--no-nll",
    ],  # fmt: skip
    "build": ["--out", "{tmp}/b", "--n", "60", "--image-size", "16", "--no-progress"],
    "verify": ["{data}", "--quick"],
    "push": ["{data}", "--repo-id", "org/name", "--dry-run"],
    "traversal": ["--out", "{tmp}/t.png", "--image-size", "16"],
    "vae train": [
        "--out",
        "{tmp}/v",
        "--objective",
        "vae",
        "--n",
        "16",
        "--image-size",
        "32",
        "--latent-dim",
        "4",
        "--batch-size",
        "8",
        "--max-steps",
        "1",
        "--no-progress",
    ],  # fmt: skip
    "vae evaluate": ["{vae_run}", "--n", "8"],
    "diffusion evaluate": ["{diffusion_run}", "--n", "8", "--probe-n", "8"],
    "diffusion train": ["--out", "{tmp}/d", "--condition", "phantom", "--n", "8",
                        "--image-size", "32", "--max-steps", "1", "--batch-size", "4",
                        "--no-progress"],  # fmt: skip
    "vae select": ["{vae_run}", "--n1", "10", "--n2", "10", "--n-phantom", "8", "--no-progress"],
    "vae sweep": [
        "--out",
        "{tmp}/s",
        "--objectives",
        "vae",
        "--optimizers",
        "adam",
        "--lrs",
        "0.001",
        "--latent-dims",
        "4",
        "--seeds",
        "0",
        "--n",
        "16",
        "--val-n",
        "8",
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--no-progress",
    ],  # fmt: skip
    "baseline": [
        "resnet18",
        "--data",
        "{data}",
        "--noise",
        "9",
        "--out",
        "{tmp}/a.parquet",
        "--epochs",
        "1",
        "--input-size",
        "16",
        "--workdir",
        "{tmp}/w",
        "--no-progress",
    ],  # fmt: skip
    "demo": [
        "--data",
        "{data}",
        "--out",
        "{tmp}/demo",
        "--noise-levels",
        "9",
        "--epochs",
        "1",
        "--input-size",
        "16",
        "--n-bootstrap",
        "10",
        "--no-progress",
    ],  # fmt: skip
}

#: flags without a checked type or choices: bad values the command itself must refuse
#: (in its parse or before it starts work)
CHECKED_LATER: dict[tuple[str, str], list[str]] = {
    ("build", "--generator"): ["nope", "nosuch.mod:X"],
    ("build", "--weights"): ["{missing}"],
    ("build", "--splits"): ["train=x", "train=5", "train"],
    ("build", "--noise-levels"): ["0,1.5", "-1", "x"],
    ("reproduce", "--noise-levels"): ["0,-1", "x"],
    ("demo", "--noise-levels"): ["-1", "x"],
    ("demo", "--splits"): ["train=x"],
    ("traversal", "--generator"): ["nope"],
    ("vae train", "--objective"): ["nope"],
    ("vae train", "--arch"): ["nope"],
    ("vae train", "--optimizer"): ["nope"],
    ("vae sweep", "--preset"): ["nope"],
    ("vae sweep", "--objectives"): ["nope"],
    ("vae sweep", "--optimizers"): ["nope"],
    ("score", "--split"): ["dev"],
    ("baseline", "--split"): ["dev"],
    ("push", "--repo-id"): ["just-a-name"],
    ("push", "path"): ["{missing}", "{file}"],
    ("diffusion train", "--base"): ["{missing}"],
}

#: flags whose every value is legal where it is parsed, and why
FREE_TEXT: dict[str, str] = {
    "--revision": "any branch, tag or commit name; the Hub answers for it",
    "--tag": "any tag name; the Hub answers for it",
    "--dataset-id": "a Hub id recorded in the model-index snippet, not fetched",
    "--seeds-of": "a model name recorded in the submissions; an absent one scores nothing",
    "verify path": "verify lists a bad path among its problems with exit 1 (test_cli_errors)",
}

#: bad values that pass the parse (in range) but exceed this machine, refused before work
TOO_BIG: list[tuple[str, list[str]]] = [
    ("build", ["--n", "1000000000"]),
    ("build", ["--splits", "train=999000000,validation=1,test=1"]),
    ("reproduce", ["--n", "1000000000"]),
    ("demo", ["--n", "1000000000", "--data", None]),  # None: drop that flag from BASE
    ("demo", ["--splits", "train=999000000,validation=1,test=1", "--data", None]),
    ("vae train", ["--device", "cuda:99"]),
    ("baseline", ["--device", "cuda:99"]),
    ("demo", ["--device", "cuda:99"]),
    ("vae sweep", ["--device", "cuda:99"]),
    ("vae evaluate", ["--device", "cuda:99"]),
    ("vae select", ["--device", "cuda:99"]),
    ("diffusion train", ["--device", "cuda:99"]),
    ("diffusion evaluate", ["--device", "cuda:99"]),
]


def _leaves() -> dict[str, argparse.ArgumentParser]:
    """Every leaf command's parser by its name (``vae train``, ``build``, ...)."""
    out: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            out[name] = parser
        for action in subs:
            for child, sub in action.choices.items():
                walk(sub, f"{name} {child}".strip())

    walk(build_parser(), "")
    return out


LEAVES = _leaves()
SKIP_ACTIONS = (argparse._HelpAction, argparse._VersionAction, argparse._StoreTrueAction)


def _flag(action: argparse.Action) -> str:
    return action.option_strings[0] if action.option_strings else action.dest


def _bad_values(command: str, action: argparse.Action) -> list[str] | None:
    """The values ``action`` must refuse, or None when nothing here says what they are."""
    flag = _flag(action)
    if (command, flag) in CHECKED_LATER:
        return CHECKED_LATER[(command, flag)]
    kind = action.type
    if hasattr(kind, "bad_values"):
        return list(kind.bad_values())  # type: ignore[union-attr]
    if hasattr(kind, "kind"):  # a comma-separated list of checked values
        inner = kind.kind  # type: ignore[union-attr]
        if hasattr(inner, "bad_values"):
            return [f"1,{v}" for v in inner.bad_values() if v and "," not in v] + [","]
    if kind is key_value:
        return ["novalue", "=1", "bogus=1"]
    if action.choices is not None:
        return ["nosuch"]
    return None


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for command, parser in LEAVES.items():
        for action in parser._actions:
            if isinstance(action, SKIP_ACTIONS):
                continue
            for value in _bad_values(command, action) or []:
                cases.append((command, _flag(action), value))
    return cases


def test_every_flag_is_walked():
    assert set(BASE) == set(LEAVES)
    unwalked = []
    for command, parser in LEAVES.items():
        for action in parser._actions:
            if isinstance(action, SKIP_ACTIONS) or action.dest == "debug":
                continue
            flag = _flag(action)
            if _bad_values(command, action) or flag in FREE_TEXT:
                continue
            if f"{command} {flag}" in FREE_TEXT:
                continue
            unwalked.append(f"{command} {flag}")
    assert not unwalked, f"flags no bad value is tried on: {unwalked}"


@pytest.fixture(scope="module")
def places(
    tiny_dataset: Path, zero_submission: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    import torch  # noqa: F401  (imported once, so no case is timed on the import)

    root = tmp_path_factory.mktemp("flags")
    plain = root / "plain.txt"
    plain.write_text("a file, not a folder\n")
    (root / "folder").mkdir()
    run = root / "vae_run"
    assert main(["vae", "train", *_fill(BASE["vae train"], {"tmp": str(root)})[2:],
                 "--out", str(run)]) == 0  # fmt: skip
    diffusion = root / "diffusion_run"
    assert main(["diffusion", "train", *_fill(BASE["diffusion train"], {"tmp": str(root)})[2:],
                 "--out", str(diffusion)]) == 0  # fmt: skip
    return {
        "diffusion_run": str(diffusion), "sub": str(zero_submission),
        "data": str(tiny_dataset), "vae_run": str(run), "file": str(plain),
        "folder": str(root / "folder"), "missing": str(root / "no-such-thing"),
    }  # fmt: skip


def _fill(argv: list[str], places: dict[str, str]) -> list[str]:
    return [a.format(**places) for a in argv]


def _nargs(parser: argparse.ArgumentParser, flag: str) -> int:
    action = next(a for a in parser._actions if flag in a.option_strings)
    if isinstance(action, argparse._StoreTrueAction):
        return 0
    return action.nargs if isinstance(action.nargs, int) else 1


def _with(command: str, pairs: list[str | None]) -> list[str]:
    """BASE[command] with each ``flag value`` of ``pairs`` replacing that flag's own; a
    positional (no leading dash) replaces the base's first positional."""
    parser = LEAVES[command]
    argv = list(BASE[command])
    it = iter(pairs)
    for flag, value in zip(it, it, strict=True):
        if flag in argv:
            i = argv.index(flag)
            del argv[i : i + 1 + _nargs(parser, flag)]
        if value is None:
            continue
        if not flag.startswith("-"):
            argv[0] = value
            continue
        n = _nargs(parser, flag)
        ok = next(a for a in parser._actions if flag in a.option_strings).default
        rest = [str(v) for v in ok][1:] if n > 1 and isinstance(ok, tuple | list) else []
        argv += [flag, value, *rest]
    return [*command.split(), *argv]


class _TookTooLong(Exception):
    pass


def _run(argv: list[str]) -> tuple[int, float]:
    def stop(signum, frame):
        raise _TookTooLong(f"{argv} ran for over {3 * SECONDS:g} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(int(3 * SECONDS))
    t = time.perf_counter()
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return int(rc or 0), time.perf_counter() - t


def _assert_refused(argv: list[str], named: tuple[str, ...], capsys) -> None:
    rc, seconds = _run(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, (argv, err)
    assert rc == 2, (argv, rc, out[-500:], err[-500:])
    lines = [line for line in err.splitlines() if line.strip()]
    prog = "synthoct " + " ".join(argv[: 2 if argv[0] in ("vae", "diffusion") else 1])
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), (argv, err)
    assert any(n.lower() in lines[0].lower() for n in named if n), (argv, lines[0])
    assert seconds < SECONDS, (argv, f"{seconds:.1f} s")


CASES = _cases()


@pytest.mark.parametrize(("command", "flag", "value"), CASES, ids=[" ".join(c) for c in CASES])
def test_a_bad_value_is_one_line_and_exit_2(command, flag, value, places, tmp_path, capsys):
    value = value.format(**places)
    argv = _fill(_with(command, [flag, value]), {**places, "tmp": str(tmp_path)})
    # the line names the flag, its value or (for a positional) its name
    named = (flag, flag.lstrip("-").replace("-", "_"), flag.lstrip("-").replace("-", " "),
             value, repr(value), value.partition("=")[0])  # fmt: skip
    _assert_refused(argv, named, capsys)


@pytest.mark.parametrize(("command", "pairs"), TOO_BIG, ids=[f"{c} {p}" for c, p in TOO_BIG])
def test_what_the_machine_cannot_hold_is_refused_before_work(command, pairs, places, tmp_path,
                                                             capsys):  # fmt: skip
    argv = _fill(_with(command, pairs), {**places, "tmp": str(tmp_path)})
    _assert_refused(argv, ("disk", "memory", "device"), capsys)


def test_the_walk_can_fail(places, tmp_path, capsys):
    """A value the command accepts is not counted as refused."""
    argv = _fill(_with("reproduce", ["--n", "60"]), {**places, "tmp": str(tmp_path)})
    with pytest.raises(AssertionError):
        _assert_refused(argv, ("--n",), capsys)
