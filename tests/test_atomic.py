import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from synthoct_bench.atomic import save_figure, write_text  # noqa: E402


def test_write_text_replaces_and_leaves_no_temp(tmp_path):
    path = write_text(tmp_path / "sub" / "a.json", "one")
    write_text(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_failed_figure_save_keeps_the_old_file_and_closes_the_figure(tmp_path, monkeypatch):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "f.png", dpi=50)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert not plt.fignum_exists(fig.number)

    broken = plt.figure()

    def full_disk(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(broken, "savefig", full_disk)
    before = path.read_bytes()
    with pytest.raises(OSError, match="disk full"):
        save_figure(broken, path)
    assert not plt.fignum_exists(broken.number)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]


def test_undefined_figures_become_null_at_any_depth():
    import json
    import math

    from synthoct_bench.atomic import finite_or_none

    report = {"r2": [0.5, math.nan, -math.inf], "kid": {"mean": math.inf, "n": 3}, "name": "x"}
    cleaned = finite_or_none(report)
    assert cleaned == {"r2": [0.5, None, None], "kid": {"mean": None, "n": 3}, "name": "x"}
    json.dumps(cleaned, allow_nan=False)
