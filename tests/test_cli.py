"""The `synthoct` entry point: user errors are one line and exit 2, --debug re-raises."""

from __future__ import annotations

import pytest

from synthoct_bench.cli import main


@pytest.mark.parametrize(
    "argv",
    [
        ["build", "--n", "2", "--out", "{tmp}/d"],
        ["verify", "{tmp}/nothing-here"],
        ["score", "--data", "{tmp}/nothing-here", "--noise", "9", "--predictions", "{tmp}/p.csv"],
        ["traversal", "--generator-arg", "nope=1", "--out", "{tmp}/t.png"],
        ["reproduce", "--n", "1", "--no-encoder"],
    ],
)
def test_user_errors_are_one_line_and_exit_2(argv, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        rc = main(argv)
    except SystemExit as exc:  # refused where it is parsed
        rc = exc.code
    err = capsys.readouterr().err
    if argv[0] == "verify":  # verify reports problems as a list, exit 1
        assert rc == 1
        return
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"synthoct {argv[0]}: error: ")
    assert "Traceback" not in err


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(ValueError, match="n must be >= 3"):
        main(["--debug", "build", "--n", "2", "--out", str(tmp_path / "d")])
