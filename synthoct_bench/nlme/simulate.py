"""Batched prediction and simulation: the NLME model as a decoder η → longitudinal data.

``predict`` gives the noise-free observed state at the observation times (and
optionally d pred / d η); ``simulate`` adds the additive residual error
N(0, σ²), drawn from :mod:`synthoct_bench.rng` keyed by (seed, stream,
subject id) so any subject's series can be rebuilt alone, bit for bit.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from synthoct_bench import rng
from synthoct_bench.nlme.model import (
    PAPER_MODEL,
    NLMEModel,
    PopulationParams,
    validate_eta,
    validate_times,
)

__all__ = ["predict", "simulate", "resolve"]

#: subjects per chunk when drawing residuals (bounds temporaries to ~100 MB)
_CHUNK = 1 << 18
#: step of the central differences used for sensitivities of generic models
_FD_STEP = 1e-4


def resolve(
    eta: np.ndarray,
    params: PopulationParams | None,
    model: NLMEModel | None,
    times: np.ndarray | None,
) -> tuple[np.ndarray, PopulationParams, NLMEModel, np.ndarray]:
    """Fill defaults and validate (η, params, model, times) for the public functions."""
    model = PAPER_MODEL if model is None else model
    params = PopulationParams.coerce(params, model)
    eta = validate_eta(eta, model.n_eta_)
    times = validate_times(model.obs_times if times is None else times)
    return eta, params, model, times


def _predict_generic(model: NLMEModel, ind: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Per-subject scipy solve of a user model's rhs (slow path)."""
    n_state = len(model.state_names)
    y0 = np.zeros(n_state)
    y0[model.dose_state] = model.dose
    t_eval, back = np.unique(times, return_inverse=True)  # solve_ivp wants strictly increasing
    out = np.empty((ind.shape[0], times.size))
    t_end = float(times[-1])
    for i, p in enumerate(ind):
        if t_end == 0.0:
            out[i] = y0[model.observed_state]
            continue
        sol = solve_ivp(
            model.rhs,
            (0.0, t_end),
            y0,
            method=model.method,
            t_eval=t_eval,
            args=(p,),
            rtol=model.rtol,
            atol=model.atol,
        )
        if not sol.success:
            raise RuntimeError(f"solve_ivp failed for subject {i} (params {p}): {sol.message}")
        out[i] = sol.y[model.observed_state][back]
    return out


def predict(
    eta: np.ndarray,
    params: PopulationParams | None = None,
    *,
    model: NLMEModel | None = None,
    times: np.ndarray | None = None,
    sensitivities: bool = False,
    rtol: float | None = None,
    atol: float | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Noise-free prediction (N, T) for random effects η (N, n_eta).

    With ``sensitivities=True`` also returns d pred / d η, shape (N, T, n_eta).
    The paper's model runs on the compiled adaptive Radau IIA kernel (forward
    sensitivities on the same steps; ``rtol``/``atol`` are its local tolerances,
    None its defaults), or without numba (the light install) on scipy's Radau over
    all subjects at once (:mod:`~synthoct_bench.nlme.solver_scipy`, its own tighter
    tolerances unless given); other models use scipy per subject and central
    differences.
    """
    eta, params, model, times = resolve(eta, params, model, times)
    ind = model.params_for(eta, params.theta)
    if model.fast_kernel == "mm_oral":
        try:
            from synthoct_bench.nlme import solver as kernel
        except ImportError:  # no numba: the light install
            from synthoct_bench.nlme import solver_scipy as kernel
        tolerances = {"rtol": rtol, "atol": atol}
        result = kernel.solve_mm_oral(
            ind[:, 0],
            ind[:, 1],
            ind[:, 2],
            times,
            dose=model.dose,
            sensitivities=sensitivities,
            **{k: v for k, v in tolerances.items() if v is not None},
        )
        return result
    pred = _predict_generic(model, ind, times)
    if not sensitivities:
        return pred
    sens = np.empty(pred.shape + (eta.shape[1],))
    for k in range(eta.shape[1]):
        step = np.zeros_like(eta)
        step[:, k] = _FD_STEP
        hi = _predict_generic(model, model.params_for(eta + step, params.theta), times)
        lo = _predict_generic(model, model.params_for(eta - step, params.theta), times)
        sens[:, :, k] = (hi - lo) / (2 * _FD_STEP)
    return pred, sens


def simulate(
    eta: np.ndarray,
    seed: int,
    params: PopulationParams | None = None,
    *,
    subject_ids: np.ndarray | None = None,
    stream: str = "residual",
    model: NLMEModel | None = None,
    times: np.ndarray | None = None,
) -> np.ndarray:
    """Observations (N, T): ``predict(eta)`` plus residual error N(0, σ²).

    Residuals are keyed by (seed, ``rng.stream_id(stream)``, subject id);
    ``subject_ids`` defaults to ``arange(N)``. Use a distinct ``stream`` per
    independent series (e.g. ``f"residual/s{k}"`` per noise level).
    """
    eta, params, model, times = resolve(eta, params, model, times)
    n = eta.shape[0]
    ids = np.arange(n) if subject_ids is None else np.asarray(subject_ids)
    if ids.shape != (n,):
        raise ValueError(f"subject_ids must have shape ({n},), got {ids.shape}")
    if not isinstance(stream, str) or not stream:
        raise ValueError("stream must be a non-empty string naming this use of randomness")
    out = predict(eta, params, model=model, times=times)
    sid = rng.stream_id(stream)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        out[start:stop] += params.sigma * rng.standard_normal(
            seed, sid, ids[start:stop], times.size
        )
    return out
