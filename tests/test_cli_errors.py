"""Every subcommand answers bad input with one line and exit 2 (verify: its problem list and
exit 1), never a traceback; ``--debug`` shows the traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from synthoct_bench.cli import main

#: (argv, the command's expected exit status, a phrase the message must hold).
#: {data}: the tiny dataset; {tmp}: an empty temp folder; {file}: an existing plain file;
#: {sub}: a valid submission for noise 9 of the tiny dataset's test split.
CASES: list[tuple[list[str], int, str]] = [
    (["build", "--out", "{tmp}/d", "--n", "3"], 2, "at least 20 training subjects"),
    (["build", "--out", "{file}", "--n", "60"], 2, "not a folder"),
    (["build", "--out", "/proc/synthoct-test", "--n", "60"], 2, ""),
    (["build", "--out", "{tmp}/g", "--n", "60", "--generator", "nosuch.mod:X"], 2, "import"),
    (["build", "--out", "{tmp}/g", "--n", "60", "--generator", "nope"], 2, "unknown generator"),
    (["build", "--out", "{tmp}/g", "--n", "60", "--generator-arg", "bogus=1"], 2, "arguments"),
    (["build", "--out", "{tmp}/g", "--n", "60", "--fit-arg", "nope=1"], 2, "unknown fit option"),
    (["build", "--out", "{tmp}/g", "--merge"], 2, "not a synthoct build folder"),
    (["build", "--out", "{tmp}/g", "--splits", "train=x"], 2, "bad split size"),
    (["build", "--out", "{tmp}/g", "--noise-levels", "0,1.5"], 2, "non-negative integers"),
    (["verify", "{tmp}/none"], 1, "not a directory"),
    (["verify", "{bad_manifest}"], 1, "malformed"),
    (["verify", "{empty_manifest}"], 1, "must be a JSON object"),
    (["verify", "{notjson_manifest}"], 1, "not valid JSON"),
    (
        ["score", "--data", "{bad_manifest}", "--noise", "9", "--predictions", "{sub}"],
        2,
        "malformed",
    ),  # fmt: skip
    (
        ["score", "--data", "{empty_manifest}", "--noise", "9", "--predictions", "{sub}"],
        2,
        "JSON object",
    ),  # fmt: skip
    (
        ["score", "--data", "{notjson_manifest}", "--noise", "9", "--predictions", "{sub}"],
        2,
        "not valid JSON",
    ),  # fmt: skip
    (
        ["score", "--data", "{data}", "--noise", "9", "--predictions", "{sub}", "--json", "{tmp}"],
        2,
        "is a folder",
    ),  # fmt: skip
    (["score", "--data", "{data}", "--noise", "4", "--predictions", "{sub}"], 2, "not in this"),
    (
        ["score", "--data", "{tmp}/none", "--noise", "9", "--predictions", "{sub}"],
        2,
        "no dataset folder",
    ),  # fmt: skip
    (
        ["score", "--data", "{data}", "--noise", "9", "--predictions", "{tmp}/x.parquet"],
        2,
        "does not exist",
    ),  # fmt: skip
    (["push", "{data}", "--repo-id", "just-a-name", "--dry-run"], 2, "ORG/NAME"),
    (["push", "{tmp}/none", "--repo-id", "org/name", "--dry-run"], 2, "not a directory"),
    (
        ["baseline", "average", "--data", "{data}", "--noise", "5", "--out", "{tmp}/a.parquet"],
        2,
        "not in this dataset",
    ),  # fmt: skip
    (
        [
            "baseline",
            "random",
            "--data",
            "{data}",
            "--noise",
            "9",
            "--split",
            "dev",
            "--out",
            "{tmp}/a.parquet",
        ],
        2,
        "does not exist",
    ),  # fmt: skip
    (
        ["baseline", "average", "--data", "{tmp}/none", "--noise", "9", "--out", "{tmp}/a.parquet"],
        2,
        "no dataset folder",
    ),  # fmt: skip
    (
        ["baseline", "oracle", "--data", "{data}", "--noise", "9", "--out", "{tmp}/a.txt"],
        2,
        "unknown submission format",
    ),  # fmt: skip
    (
        [
            "baseline",
            "resnet18",
            "--data",
            "{data}",
            "--noise",
            "9",
            "--out",
            "{tmp}/a.parquet",
            "--model",
            "{tmp}/none",
        ],
        2,
        "",
    ),  # fmt: skip
    (["traversal", "--generator", "nope", "--out", "{tmp}/t.png"], 2, "unknown generator"),
    (["traversal", "--generator-arg", "bogus=1", "--out", "{tmp}/t.png"], 2, "arguments"),
    (["reproduce", "--noise-levels", "0,-1", "--no-encoder"], 2, "non-negative integers"),
    (["reproduce", "--n", "1", "--no-encoder"], 2, "--n: '1' is out of range"),
    (["demo", "--data", "{tmp}/none", "--out", "{tmp}/demo"], 2, "no dataset folder"),
    (["demo", "--out", "{file}", "--n", "60"], 2, ""),
]


@pytest.fixture(scope="module")
def places(
    tiny_dataset: Path, zero_submission: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    root = tmp_path_factory.mktemp("cli_errors")
    plain = root / "plain.txt"
    plain.write_text("not a folder\n")
    bad = {}
    for name, text in (
        ("bad_manifest", None),
        ("empty_manifest", "[]"),
        ("notjson_manifest", "{not json"),
    ):
        copy = root / name
        shutil.copytree(tiny_dataset, copy)
        if text is None:
            manifest = json.loads((copy / "manifest.json").read_text())
            del manifest["seed"]
            text = json.dumps(manifest)
        (copy / "manifest.json").write_text(text)
        bad[name] = str(copy)
    return {"data": str(tiny_dataset), "file": str(plain), "sub": str(zero_submission), **bad}


@pytest.mark.parametrize(("argv", "code", "phrase"), CASES, ids=lambda v: str(v)[:60])
def test_bad_input_is_one_line_never_a_traceback(argv, code, phrase, places, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, **places) for a in argv]
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own usage errors: exit 2, usage and one line
        rc = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert rc == code, (rc, out, err)
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"synthoct {argv[0]}: error: "), err
        assert phrase in lines[0], lines[0]
    else:
        assert phrase in out, out


def test_debug_re_raises(tmp_path):
    with pytest.raises(ValueError, match="at least 20 training subjects"):
        main(["--debug", "build", "--out", str(tmp_path / "d"), "--n", "3"])
