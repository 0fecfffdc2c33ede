import numpy as np
import pytest
from PIL import Image

from synthoct_bench import latent
from synthoct_bench.cli import main
from synthoct_bench.generators import PhantomGenerator
from synthoct_bench.generators.traversal import (
    save_traversal_figure,
    traversal_grid,
    traversal_latents,
)


class _Bars:
    """A tiny generator: image brightness = 100 + 20 * z[dim 3], nothing else."""

    image_size = 8
    eta_dims = (3,)

    def generate(self, z, seeds):
        return np.clip(100 + 20 * z[:, 3], 0, 255).astype(np.uint8)[:, None, None] * np.ones(
            (1, 8, 8), np.uint8
        )

    def get_config(self):
        return {"name": "bars", "dims": {"brightness": 3}}


def test_latents_centre_column_zero_and_rows_vary_one_dim():
    z = traversal_latents([5, 9], np.linspace(-3, 3, 7), seed=1)
    assert z.shape == (14, latent.LATENT_DIM)
    assert np.all(z[:, [5, 9]][[3, 10]] == 0)  # centre column
    np.testing.assert_allclose(z[:7, 5], np.linspace(-3, 3, 7))
    assert np.all(z[:7, 9] == 0) and np.all(z[7:, 5] == 0)
    others = np.delete(z, [5, 9], axis=1)
    assert np.all(others == others[0])


def test_grid_layout_for_any_generator():
    grid = traversal_grid(_Bars(), [3, 7], values=[-1, 0, 1], gap=2)
    assert grid.shape == (2 * 8 + 2, 3 * 8 + 4) and grid.dtype == np.uint8
    assert [grid[0, c * 10] for c in range(3)] == [80, 100, 120]
    assert [grid[10, c * 10] for c in range(3)] == [100, 100, 100]  # dim 7 does nothing


def test_phantom_grid_and_figure(tmp_path):
    gen = PhantomGenerator(image_size=48)
    grid = traversal_grid(gen, gen.eta_dims, values=[-3, 0, 3])
    assert grid.shape == (3 * 48 + 4, 3 * 48 + 4)
    path = save_traversal_figure(gen, gen.eta_dims, tmp_path / "fig.png", values=[-2, 0, 2])
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 200


def test_command_writes_png(tmp_path):
    out = tmp_path / "t.png"
    rc = main(["traversal", "--generator", "phantom", "--image-size", "40", "--out", str(out),
               "--values", "-2", "2", "3", "--dims", "91", "12"])  # fmt: skip
    assert rc == 0 and out.exists()


def test_bad_input():
    with pytest.raises(ValueError, match="0-based"):
        traversal_latents([128])
    with pytest.raises(ValueError, match="base_z"):
        traversal_latents([1], base_z=np.zeros(5))
    with pytest.raises(ValueError, match="labels"):
        save_traversal_figure(_Bars(), [3], "/tmp/never.png", labels=["a", "b"])
