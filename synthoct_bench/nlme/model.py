"""NLME model specification: structural ODE, individual parameters, dose, times, defaults.

An :class:`NLMEModel` says everything :func:`~synthoct_bench.nlme.predict`,
``simulate``, ``loglik`` (and the EBE / population fit) need to know about a
model; :class:`PopulationParams` holds the population parameters (θ, diagonal
Ω, σ) that are estimated or set. ``PAPER_MODEL`` is the paper's
one-compartment, first-order-absorption, Michaelis-Menten model (eqs. 4-9),
which runs on a compiled per-subject adaptive solver; any other model supplies
a numpy right-hand side and runs on scipy (slower, same API).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from synthoct_bench.nlme.reference import OBS_TIMES, PAPER_THETA

__all__ = [
    "PopulationParams",
    "NLMEModel",
    "PAPER_MODEL",
    "OBS_TIMES",
    "paper_rhs",
    "validate_eta",
    "validate_times",
]

#: rhs(t, state (n_state,), params (n_param,)) -> d state / dt (n_state,)
Rhs = Callable[[float, np.ndarray, np.ndarray], np.ndarray]
#: individual_params(theta (n_theta,), eta (N, n_eta)) -> params (N, n_param)
IndividualParams = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _positive_tuple(name: str, values: Sequence[float]) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    bad = [v for v in out if not (math.isfinite(v) and v > 0)]
    if bad:
        raise ValueError(f"{name} must be finite and > 0, got {out}; fix the entries {bad}")
    return out


@dataclass(frozen=True)
class PopulationParams:
    """Population parameters of an NLME model.

    ``theta``: typical values of the individual parameters (for the paper model
    tvKa, tvImax, tvIC50); ``omega``: the diagonal of Ω, i.e. the VARIANCES of
    η; ``sigma``: the SD (not variance) of the additive residual error.
    """

    theta: tuple[float, ...] = PAPER_THETA
    omega: tuple[float, ...] = (1.0, 1.0, 1.0)
    sigma: float = 0.01

    def validate(self, n_theta: int, n_eta: int) -> PopulationParams:
        """Raise ValueError unless shapes match the model and all values are finite and > 0."""
        if len(self.theta) != n_theta:
            raise ValueError(
                f"theta has {len(self.theta)} entries but the model has {n_theta} parameters"
            )
        if len(self.omega) != n_eta:
            raise ValueError(
                f"omega (diagonal of Omega) has {len(self.omega)} entries but the model has "
                f"{n_eta} random effects"
            )
        _positive_tuple("theta", self.theta)
        _positive_tuple("omega (variances of eta)", self.omega)
        _positive_tuple("sigma (residual SD)", (self.sigma,))
        return self

    @classmethod
    def coerce(
        cls, value: PopulationParams | dict | None = None, model: NLMEModel | None = None
    ) -> PopulationParams:
        """The population parameters to use, checked against ``model`` (default: the paper's).

        ``value`` is a PopulationParams, its dict form (:meth:`to_dict`) or None for
        the model's defaults. Every entry point that takes parameters goes through
        here, so they all accept the same forms and reject bad values the same way.
        """
        model = PAPER_MODEL if model is None else model
        if value is None:
            params = model.default_params
        elif isinstance(value, cls):
            params = value
        elif isinstance(value, dict):
            params = cls.from_dict(value)
        else:
            raise ValueError(
                "params must be a PopulationParams, its dict form or None, "
                f"got {type(value).__name__}"
            )
        return params.validate(model.n_theta, model.n_eta_)

    def to_dict(self) -> dict[str, list[float] | float]:
        """JSON-ready dict; ``PopulationParams.from_dict(p.to_dict()) == p``."""
        d = asdict(self)
        return {"theta": list(d["theta"]), "omega": list(d["omega"]), "sigma": d["sigma"]}

    @classmethod
    def from_dict(cls, d: dict) -> PopulationParams:
        unknown = set(d) - {"theta", "omega", "sigma"}
        if unknown:
            raise ValueError(f"unknown PopulationParams keys {sorted(unknown)}")
        return cls(
            theta=tuple(float(v) for v in d["theta"]),
            omega=tuple(float(v) for v in d["omega"]),
            sigma=float(d["sigma"]),
        )


def paper_rhs(t: float, state: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Paper's model, eqs. (4)-(5): state (Depot, Central), params (Ka, Imax, IC50)."""
    depot, central = state
    ka, imax, ic50 = params
    return np.array([-ka * depot, ka * depot - imax * central / (ic50 + central)])


@dataclass(frozen=True)
class NLMEModel:
    """A structural ODE model with log-normal random effects.

    Individual parameters: if ``individual_params`` is None the model is
    *mu-referenced*: param_k = theta_k · exp(eta_k) (one η per parameter), so
    d pred / d log(theta_k) == d pred / d eta_k (the FOCE fit uses this).
    Otherwise ``individual_params(theta, eta)`` maps θ (n_theta,) and η
    (N, n_eta) to parameters (N, n_param), and ``n_eta`` must be given.

    Dosing: one bolus of ``dose`` into state ``dose_state`` at t = 0, all other
    states start at 0. The prediction is state ``observed_state`` at ``obs_times``.
    ``fast_kernel`` names a compiled solver (only ``"mm_oral"``, the paper's
    model); None solves ``rhs`` with scipy ``solve_ivp`` per subject.
    ``ridge`` is a direction in η along which the likelihood of some subjects
    stays flat far beyond the Laplace covariance (the paper's model: Imax and
    IC50 together, where only their ratio is identified); importance
    sampling adds proposal components along it.
    """

    name: str
    state_names: tuple[str, ...]
    param_names: tuple[str, ...]
    rhs: Rhs
    observed_state: int
    obs_times: tuple[float, ...] = tuple(float(t) for t in OBS_TIMES)
    dose: float = 1.0
    dose_state: int = 0
    default_params: PopulationParams = field(default_factory=PopulationParams)
    individual_params: IndividualParams | None = None
    n_eta: int | None = None
    fast_kernel: str | None = None
    #: tolerances for the generic scipy path (the fast kernel has its own)
    rtol: float = 1e-9
    atol: float = 1e-11
    method: str = "Radau"
    ridge: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        n_state = len(self.state_names)
        if not 0 <= self.observed_state < n_state or not 0 <= self.dose_state < n_state:
            raise ValueError(
                f"observed_state={self.observed_state} and dose_state={self.dose_state} must "
                f"index state_names {self.state_names}"
            )
        if self.individual_params is None and self.n_eta not in (None, len(self.param_names)):
            raise ValueError("a mu-referenced model has one eta per parameter; leave n_eta=None")
        if self.individual_params is not None and not self.n_eta:
            raise ValueError("give n_eta when you supply individual_params")
        if self.fast_kernel not in (None, "mm_oral"):
            raise ValueError(f"unknown fast_kernel {self.fast_kernel!r}; use None or 'mm_oral'")
        if self.fast_kernel == "mm_oral" and (
            not self.mu_referenced or len(self.param_names) != 3 or len(self.state_names) != 2
        ):
            raise ValueError(
                "fast_kernel='mm_oral' solves the paper's mu-referenced (Ka, Imax, IC50) model "
                "only; set fast_kernel=None for other models"
            )
        validate_times(self.obs_times)
        self.default_params.validate(self.n_theta, self.n_eta_)
        if self.ridge is not None and (
            len(self.ridge) != self.n_eta_
            or not np.all(np.isfinite(self.ridge))
            or not np.any(self.ridge)
        ):
            raise ValueError(
                f"ridge must be a nonzero finite direction with one entry per eta "
                f"({self.n_eta_}), got {self.ridge}"
            )

    @property
    def mu_referenced(self) -> bool:
        """True when param_k = theta_k·exp(eta_k), so d/d log(theta_k) == d/d eta_k."""
        return self.individual_params is None

    @property
    def n_theta(self) -> int:
        return len(self.param_names)

    @property
    def n_eta_(self) -> int:
        """Number of random effects (n_param for a mu-referenced model)."""
        return len(self.param_names) if self.n_eta is None else int(self.n_eta)

    def params_for(self, eta: np.ndarray, theta: Sequence[float]) -> np.ndarray:
        """Individual parameters (N, n_param) from η (N, n_eta) and θ."""
        theta_arr = np.asarray(theta, dtype=np.float64)
        if self.individual_params is None:
            return theta_arr[None, :] * np.exp(eta)
        params = np.asarray(self.individual_params(theta_arr, eta), dtype=np.float64)
        if params.shape != (eta.shape[0], len(self.param_names)):
            raise ValueError(
                f"individual_params returned shape {params.shape}, expected "
                f"({eta.shape[0]}, {len(self.param_names)})"
            )
        return params


def validate_eta(eta: np.ndarray, n_eta: int) -> np.ndarray:
    """η as a float64 (N, n_eta) array, or a ValueError saying what is wrong."""
    arr = np.asarray(eta, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] == n_eta:
        raise ValueError(
            f"eta must have shape (N, {n_eta}); for one subject pass eta[None, :] "
            f"(got shape {arr.shape})"
        )
    if arr.ndim != 2 or arr.shape[1] != n_eta:
        raise ValueError(f"eta must have shape (N, {n_eta}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))[:5].tolist()
        raise ValueError(f"eta has NaN or infinite values (rows {bad}...); drop or impute them")
    return arr


def validate_times(times: Sequence[float] | np.ndarray) -> np.ndarray:
    """Observation times as float64 (T,), finite, >= 0, non-decreasing."""
    arr = np.asarray(times, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"times must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("times contain NaN or infinite values")
    if arr[0] < 0:
        raise ValueError(f"times must be >= 0 (dose is at t = 0), got {arr[0]}")
    if np.any(np.diff(arr) < 0):
        raise ValueError("times must be sorted in increasing order; pass np.sort(times)")
    return arr


#: The paper's model (section 2.3): Depot → Central with first-order absorption
#: Ka and Michaelis-Menten elimination (Imax, IC50); dose 1 into Depot at t = 0;
#: Central observed at t = 0, 0.5, ..., 10 with additive error σ = 0.01.
PAPER_MODEL = NLMEModel(
    name="paper_mm_oral",
    state_names=("Depot", "Central"),
    param_names=("Ka", "Imax", "IC50"),
    rhs=paper_rhs,
    observed_state=1,
    fast_kernel="mm_oral",
    ridge=(0.0, 1.0, 1.0),
)
