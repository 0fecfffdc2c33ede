"""The procedural OCT phantom: the CPU default image generator.

Draws Spectralis-like retinal B-scans from latents z (N, 128): a layered retina
built up from Bruch's membrane (RPE, IZ, OS, EZ, myoid zone, ELM, ONL, OPL, INL,
IPL, GCL, RNFL), a foveal pit that thins the inner layers, a choroid fading into
the background, black vitreous, log-domain speckle, and optional drusen,
intraretinal cysts, subretinal fluid and vessel shadows.

Each named parameter is a documented, strictly monotone function of one latent
dim (table below; ``config()["parameters"]`` has the same table). The three
``eta_dims`` (default: the paper's dims 91, 110, 49, 0-based) drive vertical
position, tilt and luminance, the three strongest factors the paper's VAE found
(its Figure 5); the NLME random effects η are those dims. The other dims either
drive a named parameter, add nuisance variation that partly masks η, or do
nothing. Functions:

- ``tanh``: value = mid + half · tanh(z / 3); bounded by (lo, hi), near-linear for
  |z| < 1.5 (z = ±1 gives mid ± 0.32 · half, z = ±3 gives mid ± 0.76 · half).
- ``onset``: value = lo + (hi − lo) · sigmoid(2 (z − 2)); pathology that is absent for
  most subjects (z = 0: 2% of the range, z = 1: 12%, z = 2: 50%, z = 3: 88%); the
  renderer draws (value − 0.1) / 0.9 of the maximum size, nothing below 0.1
  (z < 0.9, about 82% of subjects).

Default dims (0-based; a dim that is also an eta dim moves to the next free dim
from 18 upward):

==================== === ====== ============== =============================================
name                 dim fn     range          meaning
==================== === ====== ============== =============================================
vertical_position    η1  tanh   0.46 .. 0.78   Bruch's membrane row at the centre / height
tilt                 η2  tanh   -0.18 .. 0.18  rise of Bruch's membrane across the width / height
luminance            η3  tanh   0.55 .. 1.45   tissue reflectivity gain (dB levels × gain)
curvature            12  tanh   -0.03 .. 0.12  rise of the image edges above the centre / height
pit_depth            0   tanh   0.55 .. 1.0    fraction of the inner layers removed at the fovea
pit_width            1   tanh   0.30 .. 0.60   Gaussian sigma of the foveal pit, mm
fovea_offset         2   tanh   -1.0 .. 1.0    lateral offset of the fovea (+: right), mm
thickness_scale      3   tanh   0.80 .. 1.25   scale of every retinal layer thickness
contrast             4   tanh   0.80 .. 1.25   display gain (grey levels per dB)
speckle              5   tanh   1.5 .. 4.5     speckle SD in the log domain, dB
choroid_attenuation  6   tanh   0.05 .. 0.14   choroid fade, dB per µm
field_of_view        7   tanh   5.0 .. 8.0     lateral width of the scan, mm
drusen               8   onset  0 .. 1         drusen height (up to 95 µm RPE elevation)
cysts                9   onset  0 .. 1         intraretinal cyst size (up to 110 µm high)
subretinal_fluid     10  onset  0 .. 1         subretinal fluid height (up to 170 µm)
vessel_shadows       11  tanh   0 .. 1         vessel reflectivity and shadow depth
position_jitter      13  tanh   ±0.16·nuisance nuisance: adds to vertical_position
tilt_jitter          14  tanh   ±0.18·nuisance nuisance: adds to tilt
luminance_jitter     15  tanh   ±0.45·nuisance nuisance: adds to luminance
rnfl_asymmetry       16  tanh   -1 .. 1        side towards which the RNFL thickens (disc side)
undulation           17  tanh   0 .. 0.02      slow wave of Bruch's membrane / height
==================== === ====== ============== =============================================

How strongly η shows is the benchmark's difficulty: ``eta_visibility`` scales the
half-ranges of the three η parameters (1.0 = the table), ``nuisance`` the three
jitter parameters that act on the same image features. The default (1.0, 0.3)
leaves η clearly visible while a perfect reader of the image is limited by the
jitter to roughly R² ≈ 1/(1 + 0.3²) ≈ 0.92 per η dim in the near-linear range.
As a floor for what an image model should reach: a ridge regression on 32×32
block-averaged pixels of 64-px images (5,000 train, 1,000 test subjects) gets
R² ≈ 0.85 / 0.84 / 0.70 for (vertical position, tilt, luminance) at the default,
0.92 / 0.92 / 0.78 with nuisance 0, 0.66 / 0.68 / 0.47 at eta_visibility 0.5.
The paper's ResNet18 reached R² 0.60 on its diffusion images at σ² = 0.
Speckle, drusen, cysts, fluid and vessel layout come from the per-subject seed
only, so an image is a pure function of (its z, its seed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthoct_bench import latent, rng
from synthoct_bench.atomic import atomic_write_dir
from synthoct_bench.generators.base import GENERATOR_CONFIG_NAME
from synthoct_bench.generators.phantom import render as _r

__all__ = ["PhantomGenerator", "ParameterSpec", "PHANTOM_VERSION", "PARAMETER_SPECS"]

PHANTOM_VERSION = "1.0.0"
_TANH_SCALE = 3.0


@dataclass(frozen=True)
class ParameterSpec:
    """One named parameter: ``fn`` of latent dim ``dim`` into (lo, hi)."""

    name: str
    fn: str  # "tanh" or "onset"
    lo: float
    hi: float
    unit: str
    meaning: str
    role: str = "feature"  # "eta", "feature" or "nuisance"

    def value(self, z: np.ndarray) -> np.ndarray:
        if self.fn == "tanh":
            mid, half = 0.5 * (self.hi + self.lo), 0.5 * (self.hi - self.lo)
            return mid + half * np.tanh(z / _TANH_SCALE)
        return self.lo + (self.hi - self.lo) / (1.0 + np.exp(-2.0 * (z - 2.0)))


def _spec(name, fn, lo, hi, unit, meaning, role="feature") -> ParameterSpec:
    return ParameterSpec(name, fn, float(lo), float(hi), unit, meaning, role)


#: The table of the module docstring at eta_visibility = 1 and nuisance = 1 (jitter
#: half-ranges are multiplied by the ``nuisance`` setting).
PARAMETER_SPECS: tuple[ParameterSpec, ...] = (
    _spec("vertical_position", "tanh", 0.46, 0.78, "fraction of height",
          "Bruch's membrane row at the image centre", "eta"),
    _spec("tilt", "tanh", -0.18, 0.18, "fraction of height",
          "rise of Bruch's membrane from left to right edge (positive: right side lower)", "eta"),
    _spec("luminance", "tanh", 0.55, 1.45, "gain", "tissue reflectivity gain", "eta"),
    _spec("curvature", "tanh", -0.03, 0.12, "fraction of height",
          "how far the image edges rise above the centre"),
    _spec("pit_depth", "tanh", 0.55, 1.0, "fraction", "inner layers removed at the fovea"),
    _spec("pit_width", "tanh", 0.30, 0.60, "mm", "Gaussian sigma of the foveal pit"),
    _spec("fovea_offset", "tanh", -1.0, 1.0, "mm", "fovea offset (positive: right)"),
    _spec("thickness_scale", "tanh", 0.80, 1.25, "factor", "scale of all retinal layers"),
    _spec("contrast", "tanh", 0.80, 1.25, "factor", "display grey levels per dB"),
    _spec("speckle", "tanh", 1.5, 4.5, "dB", "speckle SD in the log domain"),
    _spec("choroid_attenuation", "tanh", 0.05, 0.14, "dB/µm", "fade of the choroid"),
    _spec("field_of_view", "tanh", 5.0, 8.0, "mm", "lateral width of the scan"),
    _spec("drusen", "onset", 0.0, 1.0, "amount", "drusen height (max 95 µm; none below 0.1)"),
    _spec("cysts", "onset", 0.0, 1.0, "amount", "cyst size (max 110 µm; none below 0.1)"),
    _spec("subretinal_fluid", "onset", 0, 1, "amount", "height (max 170 µm; none below 0.1)"),
    _spec("vessel_shadows", "tanh", 0.0, 1.0, "amount", "vessel reflectivity and shadows"),
    _spec("position_jitter", "tanh", -0.16, 0.16, "fraction of height",
          "nuisance added to vertical_position", "nuisance"),
    _spec("tilt_jitter", "tanh", -0.18, 0.18, "fraction of height",
          "nuisance added to tilt", "nuisance"),
    _spec("luminance_jitter", "tanh", -0.45, 0.45, "gain",
          "nuisance added to luminance", "nuisance"),
    _spec("rnfl_asymmetry", "tanh", -1.0, 1.0, "signed",
          "side towards which the RNFL thickens (optic disc side)"),
    _spec("undulation", "tanh", 0.0, 0.02, "fraction of height", "slow wave of Bruch's membrane"),
)  # fmt: skip
_SPEC = {s.name: s for s in PARAMETER_SPECS}
_ETA_NAMES = ("vertical_position", "tilt", "luminance")
_DEFAULT_DIMS = {
    "curvature": 12, "pit_depth": 0, "pit_width": 1, "fovea_offset": 2, "thickness_scale": 3,
    "contrast": 4, "speckle": 5, "choroid_attenuation": 6, "field_of_view": 7, "drusen": 8,
    "cysts": 9, "subretinal_fluid": 10, "vessel_shadows": 11, "position_jitter": 13,
    "tilt_jitter": 14, "luminance_jitter": 15, "rnfl_asymmetry": 16, "undulation": 17,
}  # fmt: skip
_SPARE_FROM = 18
_MIN_SIZE, _MAX_SIZE = 32, 2048


def _assign_dims(
    eta_dims: tuple[int, int, int], overrides: Mapping[str, int] | None
) -> dict[str, int]:
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(_DEFAULT_DIMS))
    if unknown:
        raise ValueError(
            f"unknown parameter names in dims: {unknown}; choose from {sorted(_DEFAULT_DIMS)} "
            "(the eta parameters follow eta_dims)"
        )
    dims = dict(zip(_ETA_NAMES, eta_dims, strict=True))
    taken = set(eta_dims) | set(overrides.values())
    spare = _SPARE_FROM
    for name, default in _DEFAULT_DIMS.items():
        if name in overrides:
            dims[name] = int(overrides[name])
            continue
        dim = default
        while dim in taken:
            while spare in taken:
                spare += 1
            dim = spare
        dims[name] = dim
        taken.add(dim)
    values = list(dims.values())
    bad = [d for d in values if not 0 <= d < latent.LATENT_DIM]
    if bad:
        raise ValueError(f"dims {bad} are outside 0..{latent.LATENT_DIM - 1} (dims are 0-based)")
    if len(set(values)) != len(values):
        raise ValueError(f"each parameter needs its own latent dim, got {dims}")
    return dims


class PhantomGenerator:
    """Procedural Spectralis-like OCT B-scans from latents z; see the module docstring.

    Args:
        image_size: side of the square output image (224 default, the paper's size).
        eta_dims: the three 0-based latent dims carrying η; they drive vertical
            position, tilt and luminance, in that order.
        eta_visibility: scales the effect range of the three η parameters (difficulty).
        nuisance: scales the jitter dims that partly mask η (0 turns them off).
        dims: optional overrides ``{parameter name: dim}`` for the non-η parameters.
        threads: render with this many threads (the kernel releases the GIL); the
            output does not depend on it, so it is not part of ``config()``.
    """

    name = "phantom"

    def __init__(
        self,
        image_size: int = 224,
        eta_dims: Sequence[int] = latent.PAPER_ETA_DIMS,
        *,
        eta_visibility: float = 1.0,
        nuisance: float = 0.3,
        dims: Mapping[str, int] | None = None,
        threads: int = 1,
    ) -> None:
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
            raise ValueError(f"image_size must be an int, got {image_size!r}")
        if not _MIN_SIZE <= int(image_size) <= _MAX_SIZE:
            raise ValueError(f"image_size must be in {_MIN_SIZE}..{_MAX_SIZE}, got {image_size}")
        eta = tuple(int(d) for d in eta_dims)
        if len(eta) != 3:
            raise ValueError(
                f"eta_dims must name 3 latent dims (vertical position, tilt, luminance), got {eta}"
            )
        for label, v in (("eta_visibility", eta_visibility), ("nuisance", nuisance)):
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"{label} must be a finite number >= 0, got {v}")
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        self.threads = int(threads)
        self.image_size = int(image_size)
        self.eta_dims: tuple[int, int, int] = eta  # type: ignore[assignment]
        self.eta_visibility = float(eta_visibility)
        self.nuisance = float(nuisance)
        self.dims = _assign_dims(eta, dims)
        self._overrides = {k: int(v) for k, v in (dims or {}).items()}

    # ----------------------------------------------------------------- parameters
    def _spec(self, name: str) -> ParameterSpec:
        spec = _SPEC[name]
        scale = {"eta": self.eta_visibility, "nuisance": self.nuisance}.get(spec.role)
        if scale is None:
            return spec
        mid, half = 0.5 * (spec.hi + spec.lo), 0.5 * (spec.hi - spec.lo) * scale
        return ParameterSpec(spec.name, spec.fn, mid - half, mid + half, spec.unit, spec.meaning,
                             spec.role)  # fmt: skip

    def parameters(self, z: np.ndarray) -> dict[str, np.ndarray]:
        """The named physical parameters, each (N,) float64, as the table describes."""
        z = self._check_z(z)
        return {s.name: self._spec(s.name).value(z[:, self.dims[s.name]]) for s in PARAMETER_SPECS}

    def _param_matrix(self, z: np.ndarray) -> np.ndarray:
        q = self.parameters(z)
        m = np.empty((z.shape[0], _r.N_PARAMS), dtype=np.float64)
        m[:, _r.P.POS] = q["vertical_position"] + q["position_jitter"]
        m[:, _r.P.TILT] = q["tilt"] + q["tilt_jitter"]
        m[:, _r.P.CURV] = q["curvature"]
        m[:, _r.P.GAIN] = np.maximum(q["luminance"] + q["luminance_jitter"], 0.05)
        m[:, _r.P.CONTRAST] = q["contrast"]
        m[:, _r.P.SPECKLE] = q["speckle"]
        m[:, _r.P.CHOROID_ATT] = q["choroid_attenuation"]
        m[:, _r.P.FOV] = q["field_of_view"]
        m[:, _r.P.FOVEA] = q["fovea_offset"]
        m[:, _r.P.PIT_DEPTH] = q["pit_depth"]
        m[:, _r.P.PIT_WIDTH] = q["pit_width"]
        m[:, _r.P.THICK] = q["thickness_scale"]
        m[:, _r.P.DRUSEN] = q["drusen"]
        m[:, _r.P.CYSTS] = q["cysts"]
        m[:, _r.P.FLUID] = q["subretinal_fluid"]
        m[:, _r.P.VESSELS] = q["vessel_shadows"]
        m[:, _r.P.RNFL_ASYM] = q["rnfl_asymmetry"]
        m[:, _r.P.UNDULATION] = q["undulation"]
        return m

    @staticmethod
    def _layout(seeds: np.ndarray) -> np.ndarray:
        return rng.uniform(0, rng.stream_id("phantom/layout"), seeds, _r.N_LAYOUT)

    # ----------------------------------------------------------------- checks
    @staticmethod
    def _check_z(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z)
        if z.ndim != 2 or z.shape[1] != latent.LATENT_DIM:
            raise ValueError(
                f"z must have shape (N, {latent.LATENT_DIM}), got {z.shape}; "
                "pass a batch, e.g. z[None] for one latent"
            )
        if not np.issubdtype(z.dtype, np.number) or np.iscomplexobj(z):
            raise ValueError(f"z must be real numbers, got dtype {z.dtype}")
        z = z.astype(np.float64, copy=False)
        if not np.isfinite(z).all():
            rows = np.flatnonzero(~np.isfinite(z).all(axis=1))[:5].tolist()
            raise ValueError(f"z contains NaN or inf (rows {rows}...); latents must be finite")
        return z

    @staticmethod
    def _check_seeds(seeds: np.ndarray, n: int) -> np.ndarray:
        seeds = np.asarray(seeds)
        if seeds.shape != (n,):
            raise ValueError(f"seeds must have shape ({n},) (one per latent), got {seeds.shape}")
        if n and not np.issubdtype(seeds.dtype, np.integer):
            raise ValueError(
                f"seeds must be integers, got dtype {seeds.dtype}; use rng.subject_seeds(...)"
            )
        if n and seeds.min() < 0:
            raise ValueError("seeds must be non-negative integers")
        return seeds.astype(np.int64, copy=False)

    # ----------------------------------------------------------------- rendering
    def generate(self, z: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """uint8 images (N, image_size, image_size); each depends only on its own z row and seed."""
        z = self._check_z(z)
        seeds = self._check_seeds(seeds, z.shape[0])
        size = self.image_size
        out = np.empty((z.shape[0], size, size), dtype=np.uint8)
        if z.shape[0] == 0:
            return out
        fine, coarse = _r.speckle_banks(size)
        params, layout = self._param_matrix(z), self._layout(seeds)
        chunks = np.array_split(np.arange(z.shape[0]), min(self.threads, z.shape[0]))
        if len(chunks) == 1:
            _r.render_batch(params, layout, fine, coarse, _r.LEVELS_DB, out)
            return out
        from concurrent.futures import ThreadPoolExecutor

        def work(idx: np.ndarray) -> None:
            lo, hi = idx[0], idx[-1] + 1
            _r.render_batch(params[lo:hi], layout[lo:hi], fine, coarse, _r.LEVELS_DB, out[lo:hi])

        with ThreadPoolExecutor(len(chunks)) as pool:
            list(pool.map(work, chunks))
        return out

    def layer_boundaries(self, z: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Rows (N, 15, W) of the band boundaries the images are drawn with, top to bottom
        (names in ``render.BOUNDARY_NAMES``; the last is Bruch's membrane)."""
        z = self._check_z(z)
        seeds = self._check_seeds(seeds, z.shape[0])
        size = self.image_size
        out = np.empty((z.shape[0], len(_r.BOUNDARY_NAMES), size), dtype=np.float64)
        if z.shape[0]:
            _r.boundaries_batch(self._param_matrix(z), self._layout(seeds), size, size, out)
        return out

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable description; ``PhantomGenerator.from_config`` rebuilds it."""
        parameters = []
        for s in PARAMETER_SPECS:
            d = asdict(self._spec(s.name))
            d["dim"] = self.dims[s.name]
            parameters.append(d)
        return {
            "name": self.name,
            "version": PHANTOM_VERSION,
            "image_size": self.image_size,
            "eta_dims": list(self.eta_dims),
            "dims": dict(self.dims),
            "traversal_dims": [self.dims[n] for n in (*_ETA_NAMES, "curvature")],
            "settings": {
                "eta_visibility": self.eta_visibility,
                "nuisance": self.nuisance,
                "dims_overrides": dict(self._overrides),
            },
            "functions": {
                "tanh": f"mid + half * tanh(z / {_TANH_SCALE:g}), bounded by (lo, hi)",
                "onset": "lo + (hi - lo) * sigmoid(2 * (z - 2))",
            },
            "parameters": parameters,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PhantomGenerator:
        """Rebuild a generator from ``get_config()`` output."""
        if config.get("name") != cls.name:
            raise ValueError(f"config is for generator {config.get('name')!r}, not 'phantom'")
        settings = config.get("settings", {})
        return cls(
            image_size=int(config["image_size"]),
            eta_dims=tuple(config["eta_dims"]),
            eta_visibility=float(settings.get("eta_visibility", 1.0)),
            nuisance=float(settings.get("nuisance", 0.3)),
            dims=settings.get("dims_overrides") or None,
        )

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the configuration to ``folder`` (atomically), as the learned generators
        save theirs; :meth:`from_pretrained` reads it back."""

        def write(tmp: Path) -> None:
            text = json.dumps(self.get_config(), indent=2, sort_keys=True) + "\n"
            (tmp / GENERATOR_CONFIG_NAME).write_text(text, encoding="utf-8")

        return atomic_write_dir(folder, write)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> PhantomGenerator:
        """The generator saved in ``folder`` by :meth:`save_pretrained`."""
        path = Path(folder) / GENERATOR_CONFIG_NAME
        if not path.is_file():
            raise ValueError(f"{folder} has no {GENERATOR_CONFIG_NAME}: not a saved generator")
        return cls.from_config(json.loads(path.read_text(encoding="utf-8")))

    def __repr__(self) -> str:
        return (
            f"PhantomGenerator(image_size={self.image_size}, eta_dims={self.eta_dims}, "
            f"eta_visibility={self.eta_visibility}, nuisance={self.nuisance})"
        )
