"""Disentanglement metrics for learned codes against known generating factors (numpy).

Each metric takes codes (N, d), e.g. a VAE's μ, and factors (N, k), e.g. the
phantom's ``PhantomGenerator.parameters(z)`` stacked column-wise, one row per
image, and returns a typed result with the score and what it was built from.

- :func:`mig`: mutual information gap (Chen et al. 2018), computed as the public
  disentanglement_lib does (Locatello et al. 2019): codes and factors discretised
  into 20 equal-width bins, MI in nats, the gap between the two most informative
  codes divided by the factor's entropy, averaged over factors.
- :func:`dci`: disentanglement, completeness and informativeness (Eastwood &
  Williams 2018) from a regressor's importance matrix. The factors here are
  continuous, so the regressor is a linear one fitted in closed form or by
  coordinate descent on standardised variables: ``"lasso"`` (default; its
  sparsity keeps importance off codes that only correlate through another code)
  or ``"ridge"``. Importance is the absolute coefficient. scikit-learn is not a
  dependency, and disentanglement_lib's gradient-boosted trees take about a
  minute per factor on 2k points on this project's machines. A linear regressor
  credits only the linear part of a code-factor relation, so a code that encodes
  a factor through a strongly non-monotone map scores low here.
- :func:`sap`: separated attribute predictability (Kumar et al. 2018), for
  continuous factors as disentanglement_lib computes it: the R² of a one-code
  linear regression for every (code, factor) pair, then the mean over factors of
  the gap between the two best codes.

Sanity oracles (tests): the identity code scores MIG >= 0.9 and DCI ≈ 1; a constant
code scores 0; a code that duplicates every factor in two dims scores MIG ≈ 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = [
    "MIGResult",
    "DCIResult",
    "SAPResult",
    "mig",
    "dci",
    "sap",
    "discretize",
    "discrete_mutual_info",
    "discrete_entropy",
    "r2_columns",
]

#: disentanglement_lib's default number of histogram bins for MIG.
MIG_BINS = 20


def _check(codes: Any, factors: Any, min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    codes = np.asarray(codes, dtype=np.float64)
    factors = np.asarray(factors, dtype=np.float64)
    if codes.ndim != 2 or factors.ndim != 2:
        raise ValueError(
            f"codes and factors must be 2-D (N, d) and (N, k), got {codes.shape} and "
            f"{factors.shape}; pass x[:, None] for a single column"
        )
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(
            f"codes and factors need one row per sample, got {codes.shape[0]} and "
            f"{factors.shape[0]} rows"
        )
    if codes.shape[0] < min_rows or codes.shape[1] < 1 or factors.shape[1] < 1:
        raise ValueError(
            f"need at least {min_rows} rows, 1 code and 1 factor, got codes {codes.shape}, "
            f"factors {factors.shape}"
        )
    if not (np.isfinite(codes).all() and np.isfinite(factors).all()):
        raise ValueError("codes and factors must be finite (no NaN or inf)")
    return codes, factors


# ---- MIG ----------------------------------------------------------------------------------


def discretize(values: np.ndarray, num_bins: int = MIG_BINS) -> np.ndarray:
    """Bin indices (N, m) in 0..num_bins-1 of each column of ``values`` (N, m) over
    ``num_bins`` equal-width bins spanning that column's range (a constant column
    lands in one bin), as disentanglement_lib's histogram discretiser does."""
    values = np.asarray(values, dtype=np.float64)
    out = np.empty(values.shape, dtype=np.int64)
    for j in range(values.shape[1]):
        edges = np.histogram_bin_edges(values[:, j], bins=num_bins)
        out[:, j] = np.digitize(values[:, j], edges[1:-1])
    return out


def discrete_mutual_info(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MI in nats (m, n) between every column of the integer arrays ``a`` (N, m) and
    ``b`` (N, n), from their joint histogram (the plug-in estimate)."""
    a, b = np.asarray(a), np.asarray(b)
    n = a.shape[0]
    codes_a = [np.unique(col, return_inverse=True)[1].reshape(-1) for col in a.T]
    codes_b = [np.unique(col, return_inverse=True)[1].reshape(-1) for col in b.T]
    out = np.zeros((a.shape[1], b.shape[1]))
    for i, ai in enumerate(codes_a):
        na = int(ai.max()) + 1
        for j, bj in enumerate(codes_b):
            nb = int(bj.max()) + 1
            joint = np.bincount(ai * nb + bj, minlength=na * nb).reshape(na, nb) / n
            pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
            nz = joint > 0
            out[i, j] = float(np.sum(joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])))
    return np.maximum(out, 0.0)  # round-off can leave -1e-17


def discrete_entropy(a: np.ndarray) -> np.ndarray:
    """Entropy in nats (m,) of each column of the integer array ``a`` (N, m)."""
    a = np.asarray(a)
    out = np.zeros(a.shape[1])
    for j in range(a.shape[1]):
        p = np.unique(a[:, j], return_counts=True)[1] / a.shape[0]
        out[j] = float(-np.sum(p * np.log(p)))
    return out


@dataclass(frozen=True, eq=False)
class MIGResult:
    """MIG and its parts. ``per_factor`` is NaN for a constant factor (zero entropy),
    which the mean leaves out."""

    score: float
    per_factor: np.ndarray  # (k,)
    mutual_info: np.ndarray  # (d, k), nats
    factor_entropy: np.ndarray  # (k,), nats
    num_bins: int

    def best_two(self) -> tuple[np.ndarray, np.ndarray]:
        """Per factor (k,), the most and the second-most informative code's MI over
        H(factor), the two terms of its gap (NaN for a constant factor)."""
        first, second = _best_two(self.mutual_info)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = np.where(self.factor_entropy > 0, self.factor_entropy, np.nan)
            return first / h, second / h

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "per_factor": self.per_factor.tolist(),
            "mutual_info": self.mutual_info.tolist(),
            "factor_entropy": self.factor_entropy.tolist(),
            "num_bins": self.num_bins,
        }


def _best_two(mi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The largest and second-largest MI (d, k) over codes, per factor (0 for the second
    with a single code)."""
    top = np.sort(mi, axis=0)[::-1]
    return top[0], top[1] if mi.shape[0] > 1 else np.zeros(mi.shape[1])


def mig(codes: np.ndarray, factors: np.ndarray, num_bins: int = MIG_BINS) -> MIGResult:
    """Mutual information gap of ``codes`` (N, d) for ``factors`` (N, k).

    Both are discretised into ``num_bins`` equal-width bins per column; for each
    factor, (largest − second-largest MI over codes) / H(factor); the score is the
    mean over factors with non-zero entropy. With a single code the second-largest
    MI is taken as 0.
    """
    codes, factors = _check(codes, factors)
    if num_bins < 2:
        raise ValueError(f"num_bins must be >= 2, got {num_bins}")
    c, f = discretize(codes, num_bins), discretize(factors, num_bins)
    mi = discrete_mutual_info(c, f)
    entropy = discrete_entropy(f)
    if not np.any(entropy > 0):
        raise ValueError("every factor is constant: MIG is undefined")
    first, second = _best_two(mi)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_factor = np.where(entropy > 0, (first - second) / entropy, np.nan)
    return MIGResult(float(np.nanmean(per_factor)), per_factor, mi, entropy, int(num_bins))


# ---- DCI ----------------------------------------------------------------------------------


def _standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    safe = np.where(std > 0, std, 1.0)
    return np.where(std > 0, (x - mean) / safe, 0.0)


def _lasso(
    gram: np.ndarray, cov: np.ndarray, alpha: float, max_iter: int, tol: float
) -> np.ndarray:
    """Coefficients (d, k) minimising (1/2n)‖y − Xw‖² + α‖w‖₁ for every factor column,
    by cyclic coordinate descent on the Gram matrix ``gram`` = XᵀX/n (d, d) and
    ``cov`` = XᵀY/n (d, k); a column of X that is all zero keeps coefficient 0."""
    d, k = cov.shape
    w = np.zeros((d, k))
    diag = np.diag(gram)
    for _ in range(max_iter):
        largest = 0.0
        for j in range(d):
            if diag[j] <= 0:
                continue
            rho = cov[j] - gram[j] @ w + diag[j] * w[j]
            new = np.sign(rho) * np.maximum(np.abs(rho) - alpha, 0.0) / diag[j]
            largest = max(largest, float(np.max(np.abs(new - w[j]))))
            w[j] = new
        if largest < tol:
            break
    return w


def r2_columns(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """R² of each column of ``pred`` against the same column of ``y`` (N, k); 0 for a
    constant column of ``y``."""
    ss_res = np.sum((y - pred) ** 2, axis=0)
    ss_tot = np.sum((y - y.mean(0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, 0.0)


def _one_minus_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """1 − H(p)/log(base) per row of the probability rows ``p``; 1 when base is 1."""
    if base <= 1:
        return np.ones(p.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=1) / np.log(base)
    return 1.0 - h


@dataclass(frozen=True, eq=False)
class DCIResult:
    """DCI scores (each in [0, 1]; informativeness is a test R², which can be < 0) and
    the importance matrix (d, k) they come from."""

    disentanglement: float
    completeness: float
    informativeness: float  # mean test R² over factors
    informativeness_train: float
    per_code_disentanglement: np.ndarray  # (d,)
    per_factor_completeness: np.ndarray  # (k,)
    per_factor_r2: np.ndarray  # (k,) test R²
    importance: np.ndarray  # (d, k), |coefficient| on standardised variables
    regressor: str
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "disentanglement": self.disentanglement,
            "completeness": self.completeness,
            "informativeness": self.informativeness,
            "informativeness_train": self.informativeness_train,
            "per_code_disentanglement": self.per_code_disentanglement.tolist(),
            "per_factor_completeness": self.per_factor_completeness.tolist(),
            "per_factor_r2": self.per_factor_r2.tolist(),
            "importance": self.importance.tolist(),
            "regressor": self.regressor,
            "alpha": self.alpha,
        }


def dci(
    codes: np.ndarray,
    factors: np.ndarray,
    *,
    regressor: Literal["lasso", "ridge"] = "lasso",
    alpha: float = 0.01,
    test_fraction: float = 0.2,
    seed: int = 0,
    max_iter: int = 1000,
    tol: float = 1e-6,
) -> DCIResult:
    """Disentanglement, completeness and informativeness of ``codes`` (N, d) for
    continuous ``factors`` (N, k).

    Rows are split into train and test by a permutation keyed by ``seed``
    (``test_fraction`` to test). On the training rows, codes and factors are
    standardised and each factor regressed on all codes (``"lasso"``: penalty
    ``alpha`` on the mean squared error / 2; ``"ridge"``: penalty ``alpha`` on the
    mean squared error). Importance R = |coefficients| (d, k). As in
    disentanglement_lib: disentanglement = Σ_i ρ_i (1 − H_k(R_i·/Σ_j R_ij)), ρ_i the
    code's share of the total importance; completeness = Σ_j ρ_j (1 − H_d(R_·j/Σ_i
    R_ij)), ρ_j the factor's share; entropies in base k and d. Informativeness is
    the mean test R². With no importance at all (e.g. constant codes) D = C = 0.
    """
    codes, factors = _check(codes, factors, min_rows=4)
    if regressor not in ("lasso", "ridge"):
        raise ValueError(f"regressor must be 'lasso' or 'ridge', got {regressor!r}")
    if alpha < 0 or not 0 < test_fraction < 1:
        raise ValueError(
            f"alpha must be >= 0 and test_fraction in (0, 1), got {alpha}, {test_fraction}"
        )
    n = codes.shape[0]
    n_test = min(max(1, int(round(test_fraction * n))), n - 2)
    order = np.random.default_rng(seed).permutation(n)
    train, test = order[n_test:], order[:n_test]
    c_mean, c_std = codes[train].mean(0), codes[train].std(0)
    f_mean, f_std = factors[train].mean(0), factors[train].std(0)
    x = _standardise(codes[train], c_mean, c_std)
    y = _standardise(factors[train], f_mean, f_std)
    gram, cov = x.T @ x / len(train), x.T @ y / len(train)
    if regressor == "lasso":
        w = _lasso(gram, cov, alpha, max_iter, tol)
    else:
        w = np.linalg.solve(gram + alpha * np.eye(gram.shape[0]), cov)
    r2_train = r2_columns(y, x @ w)
    x_test = _standardise(codes[test], c_mean, c_std)
    y_test = _standardise(factors[test], f_mean, f_std)
    r2_test = r2_columns(y_test, x_test @ w)

    importance = np.abs(w)
    d, k = importance.shape
    total = importance.sum()
    if total <= 0:
        zeros_d, zeros_k = np.zeros(d), np.zeros(k)
        return DCIResult(0.0, 0.0, float(r2_test.mean()), float(r2_train.mean()), zeros_d,
                         zeros_k, r2_test, importance, regressor, float(alpha))  # fmt: skip
    code_mass, factor_mass = importance.sum(1), importance.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_code = np.where(code_mass[:, None] > 0, importance / code_mass[:, None], 0.0)
        p_factor = np.where(factor_mass[None, :] > 0, importance / factor_mass[None, :], 0.0)
    per_code = np.where(code_mass > 0, _one_minus_entropy(p_code, k), 0.0)
    per_factor = np.where(factor_mass > 0, _one_minus_entropy(p_factor.T, d), 0.0)
    return DCIResult(
        disentanglement=float(np.sum(per_code * code_mass / total)),
        completeness=float(np.sum(per_factor * factor_mass / total)),
        informativeness=float(r2_test.mean()),
        informativeness_train=float(r2_train.mean()),
        per_code_disentanglement=per_code,
        per_factor_completeness=per_factor,
        per_factor_r2=r2_test,
        importance=importance,
        regressor=regressor,
        alpha=float(alpha),
    )


# ---- SAP ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SAPResult:
    """SAP and the (d, k) matrix of single-code R² it is the mean top-two gap of."""

    score: float
    per_factor: np.ndarray  # (k,)
    score_matrix: np.ndarray  # (d, k)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "per_factor": self.per_factor.tolist(),
            "score_matrix": self.score_matrix.tolist(),
        }


def sap(codes: np.ndarray, factors: np.ndarray) -> SAPResult:
    """Separated attribute predictability of ``codes`` (N, d) for continuous ``factors``
    (N, k): S_ij = cov(code_i, factor_j)² / (var code_i · var factor_j), the R² of
    regressing the factor on that one code (0 for a constant code or factor); the
    score is the mean over factors of the gap between the two largest S_ij. With a
    single code the gap is the largest S_ij itself."""
    codes, factors = _check(codes, factors)
    c = codes - codes.mean(0)
    f = factors - factors.mean(0)
    cov = c.T @ f / len(c)
    var_c, var_f = np.mean(c**2, 0), np.mean(f**2, 0)
    denom = var_c[:, None] * var_f[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(denom > 0, cov**2 / denom, 0.0)
    s = np.clip(s, 0.0, 1.0)
    top = np.sort(s, axis=0)[::-1]
    second = top[1] if s.shape[0] > 1 else np.zeros(s.shape[1])
    per_factor = top[0] - second
    return SAPResult(float(per_factor.mean()), per_factor, s)
