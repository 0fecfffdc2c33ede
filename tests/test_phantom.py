import json

import numpy as np
import pytest

from synthoct_bench import latent, rng
from synthoct_bench.generators import ImageGenerator, PhantomGenerator, get_generator
from synthoct_bench.generators.phantom.generator import PARAMETER_SPECS
from synthoct_bench.generators.phantom.render import BOUNDARY_NAMES

SIZE = 96


@pytest.fixture(scope="module")
def gen():
    return PhantomGenerator(image_size=SIZE)


def _batch(n, seed=0):
    ids = np.arange(n)
    return latent.sample_z(ids, seed), rng.subject_seeds(seed, rng.stream_id("image"), ids)


def _sweep(dim, values, base=None):
    z = (
        np.zeros((len(values), latent.LATENT_DIM))
        if base is None
        else np.tile(base, (len(values), 1))
    )
    z[:, dim] = values
    return z


def _rpe_row(images, cols):
    """Row of the brightest band (RPE/EZ complex) in the mean profile of the given columns."""
    profile = images[:, :, cols].astype(float).mean(axis=2)
    return profile.argmax(axis=1)


def test_protocol_shape_dtype_and_registry(gen):
    assert isinstance(gen, ImageGenerator)
    z, seeds = _batch(5)
    images = gen.generate(z, seeds)
    assert images.shape == (5, SIZE, SIZE) and images.dtype == np.uint8
    assert images.std() > 10  # not blank
    assert gen.eta_dims == latent.PAPER_ETA_DIMS
    assert isinstance(get_generator("phantom", image_size=64), PhantomGenerator)
    with pytest.raises(ValueError, match="unknown generator"):
        get_generator("nope")


def test_deterministic_and_batch_independent(gen):
    z, seeds = _batch(12)
    full = gen.generate(z, seeds)
    np.testing.assert_array_equal(full, gen.generate(z, seeds))
    order = np.array([7, 2, 11])
    np.testing.assert_array_equal(full[order], gen.generate(z[order], seeds[order]))
    np.testing.assert_array_equal(full[3:4], gen.generate(z[3:4], seeds[3:4]))
    threaded = PhantomGenerator(image_size=SIZE, threads=3).generate(z, seeds)
    np.testing.assert_array_equal(full, threaded)
    # the seed changes speckle and layout, not the anatomy
    other = gen.generate(z[:1], seeds[:1] + 1)
    assert not np.array_equal(other[0], full[0])


def test_each_parameter_is_monotone_in_its_dim(gen):
    values = np.linspace(-5, 5, 21)
    for spec in PARAMETER_SPECS:
        p = gen.parameters(_sweep(gen.dims[spec.name], values))[spec.name]
        assert np.all(np.diff(p) > 0), spec.name
        assert p.min() >= spec.lo - 1e-12 and p.max() <= spec.hi + 1e-12, spec.name
    # every other parameter ignores that dim
    base = gen.parameters(np.zeros((1, latent.LATENT_DIM)))
    moved = gen.parameters(_sweep(gen.dims["tilt"], [2.5]))
    changed = [k for k in base if not np.isclose(base[k][0], moved[k][0])]
    assert changed == ["tilt"]


def test_eta_dims_drive_position_tilt_luminance():
    g = PhantomGenerator(image_size=64, eta_dims=(5, 6, 7))
    assert [g.dims[n] for n in ("vertical_position", "tilt", "luminance")] == [5, 6, 7]
    assert g.dims["speckle"] != 5 and len(set(g.dims.values())) == len(g.dims)
    json.dumps(g.get_config())
    again = PhantomGenerator.from_config(json.loads(json.dumps(g.get_config())))
    assert again.dims == g.dims and again.get_config() == g.get_config()


def test_rpe_row_follows_vertical_position(gen):
    values = np.linspace(-3, 3, 7)
    z = _sweep(gen.dims["vertical_position"], values)
    images = gen.generate(z, np.zeros(len(values), dtype=np.int64))
    rows = _rpe_row(images, slice(SIZE // 2 - 8, SIZE // 2 + 8))
    assert np.all(np.diff(rows) >= 0) and rows[-1] - rows[0] > SIZE * 0.15
    bm = gen.layer_boundaries(z, np.zeros(len(values), dtype=np.int64))[:, -1, SIZE // 2]
    assert np.all(np.diff(bm) > 0)


def test_tilt_changes_rpe_slope(gen):
    values = np.linspace(-3, 3, 7)
    z = _sweep(gen.dims["tilt"], values)
    images = gen.generate(z, np.zeros(len(values), dtype=np.int64))
    left = _rpe_row(images, slice(4, 20))
    right = _rpe_row(images, slice(SIZE - 20, SIZE - 4))
    slope = right.astype(int) - left.astype(int)
    assert np.all(np.diff(slope) >= 0) and slope[-1] - slope[0] > SIZE * 0.1


def test_luminance_raises_mean_brightness(gen):
    values = np.linspace(-3, 3, 7)
    z = _sweep(gen.dims["luminance"], values)
    images = gen.generate(z, np.zeros(len(values), dtype=np.int64))
    means = images.reshape(len(values), -1).mean(axis=1)
    assert np.all(np.diff(means) > 0)


def test_curvature_raises_edges_and_pit_thins_inner_retina(gen):
    seeds = np.zeros(3, dtype=np.int64)
    bm = gen.layer_boundaries(_sweep(gen.dims["curvature"], [-3, 0, 3]), seeds)[:, -1]
    edge_rise = bm[:, SIZE // 2] - 0.5 * (bm[:, 0] + bm[:, -1])
    assert np.all(np.diff(edge_rise) > 0)
    b = gen.layer_boundaries(_sweep(gen.dims["pit_depth"], [-3, 0, 3]), seeds)
    ilm, opl_onl = BOUNDARY_NAMES.index("ilm"), BOUNDARY_NAMES.index("opl_onl")
    inner_at_fovea = (b[:, opl_onl] - b[:, ilm])[:, SIZE // 2]
    inner_at_edge = (b[:, opl_onl] - b[:, ilm])[:, 2]
    assert np.all(np.diff(inner_at_fovea) < 0)
    assert np.all(inner_at_fovea < inner_at_edge)


def test_pathology_dims_change_the_image(gen):
    seeds = np.full(2, 3, dtype=np.int64)
    b = BOUNDARY_NAMES
    for name, top, bottom in (
        ("drusen", "rpe_drusen", "bruch"),
        ("subretinal_fluid", "iz_fluid", "fluid_rpe"),
    ):
        bounds = gen.layer_boundaries(_sweep(gen.dims[name], [-3, 4]), seeds)
        gap = (bounds[:, b.index(bottom)] - bounds[:, b.index(top)]).max(axis=1)
        assert gap[0] < 0.05 and gap[1] > 3, name
    for name in ("cysts", "vessel_shadows"):
        images = gen.generate(_sweep(gen.dims[name], [-3, 4]), seeds)
        column_change = np.abs(images[0].astype(int) - images[1]).mean(axis=0)
        assert column_change.max() > 5, name


def test_layers_never_cross_even_at_extremes(gen):
    z, seeds = _batch(200, seed=4)
    z[:50] *= 2.5
    z[50:100] = np.sign(z[50:100]) * 5.0
    z[100:110] = 5.0
    z[110:120] = -5.0
    bounds = gen.layer_boundaries(z, seeds)
    assert np.isfinite(bounds).all()
    assert np.all(np.diff(bounds, axis=1) >= -1e-9)
    images = gen.generate(z[:20], seeds[:20])
    assert images.shape == (20, SIZE, SIZE)


def test_other_sizes():
    for size in (64, 160):
        g = PhantomGenerator(image_size=size)
        z, seeds = _batch(2)
        assert g.generate(z, seeds).shape == (2, size, size)


def test_empty_batch(gen):
    out = gen.generate(np.zeros((0, latent.LATENT_DIM)), np.zeros(0, dtype=np.int64))
    assert out.shape == (0, SIZE, SIZE)


def test_bad_input_is_named(gen):
    z, seeds = _batch(3)
    with pytest.raises(ValueError, match="shape"):
        gen.generate(z[:, :64], seeds)
    with pytest.raises(ValueError, match="shape"):
        gen.generate(z[0], seeds[:1])
    with pytest.raises(ValueError, match="seeds must have shape"):
        gen.generate(z, seeds[:2])
    with pytest.raises(ValueError, match="integers"):
        gen.generate(z, seeds.astype(float))
    with pytest.raises(ValueError, match="non-negative"):
        gen.generate(z, -np.ones(3, dtype=np.int64))
    bad = z.copy()
    bad[1, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        gen.generate(bad, seeds)
    with pytest.raises(ValueError, match="image_size"):
        PhantomGenerator(image_size=8)
    with pytest.raises(ValueError, match="eta_dims"):
        PhantomGenerator(eta_dims=(1, 2))
    with pytest.raises(ValueError, match="0-based"):
        PhantomGenerator(eta_dims=(1, 2, 128))
    with pytest.raises(ValueError, match="unknown parameter"):
        PhantomGenerator(dims={"wobble": 3})
    with pytest.raises(ValueError, match="eta_visibility"):
        PhantomGenerator(eta_visibility=-1)


def test_visibility_scales_eta_effect():
    z = _sweep(latent.PAPER_ETA_DIMS[0], [-2.0, 2.0])
    spread = []
    for vis in (0.25, 1.0):
        p = PhantomGenerator(image_size=64, eta_visibility=vis).parameters(z)["vertical_position"]
        spread.append(p[1] - p[0])
    assert spread[1] == pytest.approx(4 * spread[0])


def test_package_import_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, synthoct_bench.generators as g; "
        "assert 'numba' not in sys.modules and 'torch' not in sys.modules, 'heavy import'; "
        "assert 'phantom' in g.GENERATORS"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_more_features_follow_their_dims(gen):
    seeds = np.zeros(3, dtype=np.int64)
    ilm, bm = 0, len(BOUNDARY_NAMES) - 1

    def bounds(name):
        return gen.layer_boundaries(_sweep(gen.dims[name], [-3, 0, 3]), seeds)

    # the pit (thinnest retina) follows fovea_offset
    pit_col = (bounds("fovea_offset")[:, bm] - bounds("fovea_offset")[:, ilm]).argmin(axis=1)
    assert np.all(np.diff(pit_col) > 0)  # positive offset: fovea towards the right edge
    thick = bounds("thickness_scale")
    assert np.all(np.diff((thick[:, bm] - thick[:, ilm]).mean(axis=1)) > 0)
    # a wider pit, or a narrower field of view, widens the thin region in pixels
    for name, sign in (("pit_width", 1), ("field_of_view", -1)):
        b = bounds(name)
        total = b[:, bm] - b[:, ilm]
        thin = total < total.min(axis=1, keepdims=True) + 0.5 * np.ptp(total, axis=1)[:, None]
        assert np.all(sign * np.diff(thin.sum(axis=1)) > 0), name

    def images(name, values=(-3, 0, 3)):
        return gen.generate(_sweep(gen.dims[name], list(values)), seeds[: len(values)])

    def speckle(im):  # high-pass energy (neighbouring-row differences)
        return np.abs(np.diff(im.astype(float), axis=1)).mean(axis=(1, 2))

    assert np.all(np.diff(images("contrast").reshape(3, -1).std(axis=1)) > 0)
    assert np.all(np.diff(speckle(images("speckle"))) > 0)
    # choroid attenuation darkens the deep choroid (rows 8..24 px below Bruch's membrane)
    im = images("choroid_attenuation")
    row = int(gen.layer_boundaries(_sweep(0, [0.0]), seeds[:1])[0, bm, SIZE // 2])
    deep = im[:, row + 8 : row + 24].astype(float).mean(axis=(1, 2))
    assert np.all(np.diff(deep) < 0)


def test_blurred_steps_keep_their_height_and_position():
    from synthoct_bench.generators.phantom.render import _splat_blurred

    for w in (0.5, 1.9, 3.3):
        for pos in (3.6, 10.37, 50.5):
            buf = np.zeros(101)
            _splat_blurred(buf, pos, 2.0, w, 100)
            profile = np.cumsum(buf)[:100]
            assert profile[-1] == pytest.approx(2.0)
            assert np.all(np.diff(profile) >= -1e-12)
            # the pixel-averaged mean of the profile sits at the step: sum(2 - profile) = 2 * pos
            assert (2.0 - profile).sum() == pytest.approx(2.0 * max(pos, 0.0), abs=0.2), (w, pos)


def test_large_images_keep_the_anatomy():
    g = PhantomGenerator(image_size=512)
    z = np.zeros((1, latent.LATENT_DIM))
    image = g.generate(z, np.zeros(1, dtype=np.int64))
    bm = g.layer_boundaries(z, np.zeros(1, dtype=np.int64))[0, -1, 256]
    rpe = _rpe_row(image, slice(240, 272))[0]
    assert abs(rpe - bm) < 512 * 30 / 1920  # the brightest band lies within 30 µm of Bruch's


def test_save_pretrained_round_trips(tmp_path):
    g = PhantomGenerator(image_size=32, eta_visibility=0.5, nuisance=0.1)
    g.save_pretrained(tmp_path / "phantom")
    again = PhantomGenerator.from_pretrained(tmp_path / "phantom")
    assert again.get_config() == g.get_config()
    z = latent.sample_z(np.arange(3), seed=1)
    seeds = np.arange(3, dtype=np.int64)
    np.testing.assert_array_equal(again.generate(z, seeds), g.generate(z, seeds))
    with pytest.raises(ValueError, match="not a saved generator"):
        PhantomGenerator.from_pretrained(tmp_path)
