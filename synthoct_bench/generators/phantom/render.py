"""Numba kernels that draw phantom OCT B-scans, one A-scan (image column) at a time.

Each column is a step function in log intensity (dB): the retina is built up
from Bruch's membrane as a stack of band thicknesses, every band boundary adds
one step (the level difference between the two bands), and the steps are
splatted with box-filter anti-aliasing into a per-column buffer and integrated
down the depth axis (a running sum). The choroid fades with a constant slope in
dB, integrated the same way. Cysts, vessel walls and vessel shadows are more
steps in the same buffer, so overlapping features simply add in dB. Speckle and
choroid texture come from fixed banks read at per-image offsets, so an image
depends only on its own parameters and seed.

Band thicknesses are non-negative by construction (cumulative sums of
thicknesses that are products of non-negative factors), so layers never cross.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from synthoct_bench import rng

__all__ = [
    "DEPTH_UM",
    "AXIAL_RESOLUTION_UM",
    "BAND_NAMES",
    "BOUNDARY_NAMES",
    "LEVELS_DB",
    "P",
    "N_PARAMS",
    "N_LAYOUT",
    "speckle_banks",
    "render_batch",
    "boundaries_batch",
]

#: Axial extent of the image in µm (Spectralis: 496 rows × 3.87 µm).
DEPTH_UM = 1920.0
#: Axial optical resolution in tissue (Spectralis: 7 µm); band edges are blurred over it
#: (at 224 px a row is 8.6 µm, so only the anti-aliasing shows; at 512 px it is 2 rows).
AXIAL_RESOLUTION_UM = 7.0

#: Bands from the vitreous down to the choroid; LEVELS_DB[i] is band i's reflectivity.
#: Order (bright to dark) follows DESIGN.md: RPE > EZ > RNFL > IZ > choroid top >
#: IPL ≈ OPL > GCL ≈ OS > ELM > INL > myoid > ONL > vitreous; fluid and drusen are extra.
BAND_NAMES = (
    "vitreous", "rnfl", "gcl", "ipl", "inl", "opl", "onl", "elm", "myoid",
    "ez", "os", "iz", "subretinal_fluid", "rpe", "drusen", "choroid",
)  # fmt: skip
LEVELS_DB = np.array(
    [0.0, 30.0, 19.0, 23.5, 14.0, 23.0, 8.5, 17.0, 11.0, 33.0, 19.0, 27.0, 1.5, 36.0, 22.0, 25.5]
)
#: Boundary k separates band k (above) from band k + 1 (below); rows grow downwards.
BOUNDARY_NAMES = (
    "ilm", "rnfl_gcl", "gcl_ipl", "ipl_inl", "inl_opl", "opl_onl", "onl_elm", "elm_myoid",
    "myoid_ez", "ez_os", "os_iz", "iz_fluid", "fluid_rpe", "rpe_drusen", "bruch",
)  # fmt: skip
_NB = len(BOUNDARY_NAMES)

#: Layer thicknesses in µm: (foveal thinning coefficient, pericentral, peripheral),
#: after PMC6042244; the pit (Gaussian of width pit_width, depth pit_depth) thins the
#: inner layers, the ONL and outer segments thicken towards the foveal centre.
_RNFL = (1.0, 21.0, 30.0)
_GCL = (1.0, 50.0, 37.0)
_IPL = (0.95, 41.0, 30.0)
_INL = (0.9, 39.0, 33.0)
_OPL = (0.65, 33.0, 27.0)
_ONL = (-0.5, 67.0, 55.0)
_ELM, _MYOID, _EZ, _OS, _IZ, _RPE = 5.0, 16.0, 10.0, 24.0, 8.0, 18.0


class P:
    """Column indices of the per-image parameter matrix handed to the kernels."""

    POS = 0  # Bruch's membrane row at the image centre, fraction of height
    TILT = 1  # rise of Bruch's membrane across the width, fraction of height
    CURV = 2  # how far the edges rise above the centre, fraction of height
    GAIN = 3  # tissue reflectivity gain (luminance)
    CONTRAST = 4  # display contrast
    SPECKLE = 5  # speckle SD, dB
    CHOROID_ATT = 6  # dB per µm below Bruch's membrane
    FOV = 7  # lateral field of view, mm
    FOVEA = 8  # fovea offset from the image centre, mm
    PIT_DEPTH = 9
    PIT_WIDTH = 10  # Gaussian sigma of the pit, mm
    THICK = 11  # retinal thickness scale
    DRUSEN = 12  # amounts in [0, 1]
    CYSTS = 13
    FLUID = 14
    VESSELS = 15
    RNFL_ASYM = 16  # -1..1: which side the RNFL thickens towards (the optic disc)
    UNDULATION = 17  # amplitude of a slow wave of Bruch's membrane, fraction of height


N_PARAMS = 18
# Plain module constants: numba cannot read class attributes.
_P_POS = P.POS
_P_TILT = P.TILT
_P_CURV = P.CURV
_P_GAIN = P.GAIN
_P_CONTRAST = P.CONTRAST
_P_SPECKLE = P.SPECKLE
_P_CHOROID_ATT = P.CHOROID_ATT
_P_FOV = P.FOV
_P_FOVEA = P.FOVEA
_P_PIT_DEPTH = P.PIT_DEPTH
_P_PIT_WIDTH = P.PIT_WIDTH
_P_THICK = P.THICK
_P_DRUSEN = P.DRUSEN
_P_CYSTS = P.CYSTS
_P_FLUID = P.FLUID
_P_VESSELS = P.VESSELS
_P_RNFL_ASYM = P.RNFL_ASYM
_P_UNDULATION = P.UNDULATION

# Per-image layout drawn from the seed (uniform (0, 1) numbers, mapped inside the kernel).
_KD, _KC, _KV = 3, 6, 4  # drusen, cyst and vessel slots
_L_UND = 0  # undulation: phase, frequency
_L_DRUSEN = 2  # 3 per druse: position, width, relative height
_L_FLUID = _L_DRUSEN + 3 * _KD  # position, width
_L_CYSTS = _L_FLUID + 2  # 5 per cyst: position, relative size, aspect, layer, spare
_L_VESSELS = _L_CYSTS + 5 * _KC  # 4 per vessel: side, distance, width, strength
_L_OFFSETS = _L_VESSELS + 4 * _KV  # 4: speckle row/col offset, texture row/col offset
N_LAYOUT = _L_OFFSETS + 4

_BANK_SEED = 20_091_001
_banks: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _normalise(a: np.ndarray) -> np.ndarray:
    return ((a - a.mean()) / a.std()).astype(np.float32)


def speckle_banks(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(fine speckle, coarse choroid texture) banks for one image size, both (3H, 3H) float32
    with zero mean and unit SD, indexed [column, row], drawn once from a fixed seed and cached.

    Speckle is the log of the mean of 4 exponential intensities (4-frame averaged
    fully developed speckle: skewed towards dark, as in real B-scans), with a grain
    of about one pixel at 224 px that scales with the image size.
    """
    if image_size in _banks:
        return _banks[image_size]
    from scipy.ndimage import gaussian_filter

    side = 3 * image_size
    ids = np.arange(side)
    u = rng.uniform(_BANK_SEED, rng.stream_id("phantom/speckle-bank"), ids, side * 4)
    intensity = -np.log(u).reshape(side, side, 4).mean(axis=2)
    scale = image_size / 224.0
    fine = gaussian_filter(np.log(intensity), sigma=(0.45 * scale, 0.7 * scale), mode="wrap")
    g = rng.standard_normal(_BANK_SEED, rng.stream_id("phantom/texture-bank"), ids, side)
    coarse = gaussian_filter(g.reshape(side, side), sigma=(1.6 * scale, 3.2 * scale), mode="wrap")
    # stored transposed (A-scans contiguous), the layout the kernel reads
    _banks[image_size] = (
        np.ascontiguousarray(_normalise(fine).T),
        np.ascontiguousarray(_normalise(coarse).T),
    )
    return _banks[image_size]


@njit(cache=True, inline="always")
def _thickness(spec: tuple, wbase: float, pit: float, pd: float) -> float:
    coef, peri, periph = spec
    base = periph + (peri - periph) * wbase
    return base * (1.0 - coef * pd * pit)


@njit(cache=True, inline="always")
def _onset(amount: float) -> float:
    return max(0.0, (amount - 0.1) / 0.9)


@njit(cache=True)
def _column_geometry(p, lay, c, W, H, b, cyst_h, cyst_y, ves_h, ves_y, ves_s):
    """Boundary rows b (15,) of column c, plus cyst and vessel extents for that column."""
    u = (c + 0.5) / W * 2.0 - 1.0
    x = u * 0.5 * p[_P_FOV] - p[_P_FOVEA]  # mm from the foveal centre
    px = H / DEPTH_UM  # pixels per µm
    ts = p[_P_THICK]
    pd = p[_P_PIT_DEPTH]
    w = p[_P_PIT_WIDTH]
    pit = math.exp(-0.5 * (x / w) ** 2)
    wb = math.exp(-0.5 * (x / 1.4) ** 2)  # pericentral -> peripheral thickness weight

    und = p[_P_UNDULATION] * math.sin(
        2.0 * math.pi * ((0.6 + 1.2 * lay[_L_UND + 1]) * u + lay[_L_UND])
    )
    bm = H * (p[_P_POS] + 0.5 * p[_P_TILT] * u - p[_P_CURV] * u * u + und)

    # Pathology shows above an amount of 0.1 (many subjects would have a trace of
    # fluid or drusen otherwise, as a sub-pixel dark line): feature = (amount - 0.1) / 0.9.
    drusen = _onset(p[_P_DRUSEN])
    fluid_amount = _onset(p[_P_FLUID])
    cysts = _onset(p[_P_CYSTS])
    elev = 0.0  # drusen: RPE elevation, µm
    if drusen > 0.0:
        for j in range(_KD):
            o = _L_DRUSEN + 3 * j
            xc = (lay[o] * 2.0 - 1.0) * 1.6
            sd = 0.07 + 0.2 * lay[o + 1]
            elev += (
                95.0 * drusen * (0.35 + 0.65 * lay[o + 2]) * math.exp(-0.5 * ((x - xc) / sd) ** 2)
            )
    fluid = 0.0  # subretinal fluid height, µm
    if fluid_amount > 0.0:
        xc = (lay[_L_FLUID] * 2.0 - 1.0) * 0.6
        sd = 0.35 + 0.45 * lay[_L_FLUID + 1]
        fluid = 170.0 * fluid_amount * math.exp(-0.5 * ((x - xc) / sd) ** 2)

    inl_extra = 0.0
    onl_extra = 0.0
    for j in range(_KC):
        o = _L_CYSTS + 5 * j
        cyst_h[j] = 0.0
        if cysts <= 0.0:
            continue
        ry = 55.0 * cysts * (0.3 + 0.7 * lay[o + 1])  # half height, µm
        rx = ry * (2.5 + 2.5 * lay[o + 2]) / 1000.0  # half width, mm (B-scans are anisotropic)
        xc = (lay[o] * 2.0 - 1.0) * 1.5
        t = (x - xc) / rx
        if t * t < 9.0:
            # the layer swells smoothly around the cyst and always has room for it
            swell = 2.2 * ry * math.exp(-0.5 * (t / 1.2) ** 2)
            if lay[o + 3] < 0.55:
                inl_extra += swell
            else:
                onl_extra += swell
        if t * t < 1.0:
            cyst_h[j] = ry * math.sqrt(1.0 - t * t)

    # the RNFL thickens towards the optic disc (one side) and thins on the other
    asym = 1.0 + 0.8 * math.tanh(2.5 * p[_P_RNFL_ASYM]) * math.tanh(x / 1.5)
    b[14] = bm
    b[13] = bm - elev * px
    b[12] = b[13] - _RPE * ts * px
    b[11] = b[12] - fluid * px
    b[10] = b[11] - _IZ * ts * px
    b[9] = b[10] - (_OS + 14.0 * pd * pit) * ts * px
    b[8] = b[9] - _EZ * ts * px
    b[7] = b[8] - _MYOID * ts * px
    b[6] = b[7] - _ELM * ts * px
    onl = _thickness(_ONL, wb, math.exp(-0.5 * (x / (1.3 * w)) ** 2), pd) * ts + onl_extra
    # the ONL thins over drusen, so the inner retina follows the RPE elevation only in part
    onl = max(onl - 0.7 * elev, 0.3 * onl)
    b[5] = b[6] - onl * px
    b[4] = b[5] - _thickness(_OPL, wb, pit, pd) * ts * px
    b[3] = b[4] - (_thickness(_INL, wb, pit, pd) * ts + inl_extra) * px
    b[2] = b[3] - _thickness(_IPL, wb, pit, pd) * ts * px
    b[1] = b[2] - _thickness(_GCL, wb, pit, pd) * ts * px
    b[0] = b[1] - _thickness(_RNFL, wb, pit, pd) * ts * asym * px

    for j in range(_KC):
        o = _L_CYSTS + 5 * j
        if lay[o + 3] < 0.55:
            cyst_y[j] = 0.5 * (b[3] + b[4])
        else:
            cyst_y[j] = 0.5 * (b[5] + b[6])

    for j in range(_KV):
        o = _L_VESSELS + 4 * j
        ves_h[j] = 0.0
        side = 1.0 if lay[o] < 0.5 else -1.0
        xc = side * (0.45 + 2.6 * lay[o + 1])
        rad = 0.025 + 0.035 * lay[o + 2]  # vessel radius, mm
        t = (x - xc) / rad
        if t * t < 1.0:
            ves_h[j] = 1000.0 * rad * 0.8 * math.sqrt(1.0 - t * t)  # half height, µm
            ves_y[j] = b[1] + 0.3 * (b[2] - b[1])
            ves_s[j] = p[_P_VESSELS] * (0.4 + 0.6 * lay[o + 3]) * min(1.0, 1.5 * (1.0 - t * t))


@njit(cache=True, inline="always")
def _splat(buf, pos, val, H):
    """Add a step of height val at continuous row pos (box-filter anti-aliased)."""
    if pos <= 0.0:
        buf[0] += val
    elif pos < H:
        i = int(pos)
        f = pos - i
        buf[i] += val * (1.0 - f)
        buf[i + 1] += val * f


@njit(cache=True, inline="always")
def _ramp_integral(t, w):
    """Integral up to t of a unit step blurred into a linear ramp of width w."""
    h = 0.5 * w
    if t <= -h:
        return 0.0
    if t >= h:
        return t
    return (t + h) * (t + h) / (2.0 * w)


@njit(cache=True)
def _splat_blurred(buf, pos, val, w, H):
    """Like _splat, with the step blurred over w rows (the axial resolution) when w > 1."""
    if w <= 1.0:
        _splat(buf, pos, val, H)
        return
    lo = int(math.floor(pos - 0.5 * w)) - 1
    hi = min(int(math.floor(pos + 0.5 * w)) + 1, H)
    prev = 0.0  # pixel coverage below the step; pixel lo - 1 lies wholly above it
    for i in range(lo, hi + 1):
        cover = _ramp_integral(i + 1 - pos, w) - _ramp_integral(i - pos, w)
        buf[max(i, 0)] += val * (cover - prev)
        prev = cover


@njit(cache=True, nogil=True)
def render_batch(params, layout, fine_t, coarse_t, levels, out):
    """Render images into out (N, H, W) uint8 from params (N, N_PARAMS) and layout (N, N_LAYOUT).

    fine_t and coarse_t are the banks transposed (columns contiguous): each A-scan is
    drawn into a column-major scratch image, so every memory access runs along rows.
    """
    N, H, W = out.shape
    for n in range(N):
        p = params[n]
        lay = layout[n]
        b = np.empty(_NB)
        cyst_h = np.empty(_KC)
        cyst_y = np.empty(_KC)
        ves_h = np.empty(_KV)
        ves_y = np.empty(_KV)
        ves_s = np.empty(_KV)
        step = np.empty(H + 1)
        slope = np.empty(H + 1)
        lv = np.empty(H)
        img_t = np.empty((W, H), dtype=np.uint8)
        oy = int(lay[_L_OFFSETS] * 2 * H)
        ox = int(lay[_L_OFFSETS + 1] * 2 * W)
        ty = int(lay[_L_OFFSETS + 2] * 2 * H)
        tx = int(lay[_L_OFFSETS + 3] * 2 * W)
        px = H / DEPTH_UM
        psf = AXIAL_RESOLUTION_UM * px  # rows; band edges are blurred over this when > 1
        att = p[_P_CHOROID_ATT] / px  # dB per row
        fade_rows = levels[15] / att  # rows until the choroid has faded to the floor
        inv_fade = 1.0 / fade_rows
        inv_ramp = 1.0 / (25.0 * px)  # the choroid texture ramps in over 25 µm
        a = p[_P_CONTRAST] * 255.0 / 34.0  # grey levels per dB
        off = -a * 5.0  # noise floor: most vitreous pixels stay black
        gain = p[_P_GAIN]
        spk = p[_P_SPECKLE]
        for c in range(W):
            _column_geometry(p, lay, c, W, H, b, cyst_h, cyst_y, ves_h, ves_y, ves_s)
            step[:] = 0.0
            slope[:] = 0.0
            for k in range(_NB):
                _splat_blurred(step, b[k], levels[k + 1] - levels[k], psf, H)
            for j in range(_KC):
                if cyst_h[j] > 0.0:
                    depth = levels[4] if lay[_L_CYSTS + 5 * j + 3] < 0.55 else levels[6]
                    h = cyst_h[j] * px
                    _splat_blurred(step, cyst_y[j] - h, -(depth - 0.5), psf, H)
                    _splat_blurred(step, cyst_y[j] + h, depth - 0.5, psf, H)
            for j in range(_KV):
                if ves_h[j] > 0.0 and ves_s[j] > 0.0:
                    h = ves_h[j] * px
                    _splat_blurred(step, ves_y[j] - h, 6.0 * ves_s[j], psf, H)
                    _splat_blurred(step, ves_y[j] + h, -15.0 * ves_s[j], psf, H)
            bm = b[14]
            _splat(slope, bm, -att, H)
            _splat(slope, bm + fade_rows, att, H)
            # integrate the steps and slopes down the A-scan (the serial part) ...
            level = 0.0
            s = 0.0
            for y in range(H):
                s += slope[y]
                level += step[y] + s
                lv[y] = level if level > 0.0 else 0.0
            # ... add the choroid texture where the choroid is ...
            ccol = coarse_t[tx + c, ty : ty + H]
            y0 = max(0, int(bm))
            y1 = min(H, int(bm + fade_rows) + 1)
            for y in range(y0, y1):
                below = y + 0.5 - bm
                if 0.0 < below < fade_rows:
                    amp = min(1.0, below * inv_ramp) * (1.0 - below * inv_fade)
                    v = lv[y] + 6.0 * amp * ccol[y]
                    lv[y] = v if v > 0.0 else 0.0
            # ... then speckle and display mapping, independent per pixel (vectorises).
            col = img_t[c]
            fcol = fine_t[ox + c, oy : oy + H]
            for y in range(H):
                g = a * (gain * lv[y] + spk * fcol[y]) + off
                g = min(max(g, 0.0), 255.0)
                col[y] = np.uint8(g + 0.5)
        out[n] = img_t.T


@njit(cache=True)
def boundaries_batch(params, layout, H, W, out):
    """Boundary rows into out (N, 15, W) float64: the geometry render_batch draws."""
    N = params.shape[0]
    for n in range(N):
        b = np.empty(_NB)
        cyst_h = np.empty(_KC)
        cyst_y = np.empty(_KC)
        ves_h = np.empty(_KV)
        ves_y = np.empty(_KV)
        ves_s = np.empty(_KV)
        for c in range(W):
            _column_geometry(params[n], layout[n], c, W, H, b, cyst_h, cyst_y, ves_h, ves_y, ves_s)
            out[n, :, c] = b
