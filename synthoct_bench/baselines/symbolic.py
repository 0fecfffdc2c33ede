"""Symbolic regression with Soelistyo & Lowe's (2024) operators and complexities, in numpy.

Soelistyo & Lowe 2024 distil their sparse head into short expressions with PySR: binary
``+ − × ÷``, unary ``x² exp log sin sqrt abs``, complexity 1 per node except
sin (3), exp (2) and log (2), parsimony 0.001, complexity at most 20. PySR needs a
Julia installation, which these machines lack, so this module is a small genetic
programming search with the same search space and the same objective; PySR is
used instead where it is installed (``backend="pysr"``).

The search (Koza-style GP with a Pareto hall of fame, as PySR keeps one):
expressions are prefix token tuples; a population evolves by tournament
selection, subtree crossover, subtree/point/constant mutation, hoisting and
insertion; constants of the hall of fame are refined by least squares every few
generations. Expressions with NaN or inf on the data are discarded (PySR's
rule), so ``log`` and ``sqrt`` of negative values are not "protected".

The loss is the mean squared error divided by the target's variance (1 − R² on
the training rows), so ``parsimony`` means the same for any target scale; the
expression itself predicts the target in its own units. The chosen expression
minimises loss + parsimony · complexity over the hall of fame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthoct_bench.baselines.base import ParamsMixin

__all__ = [
    "OPERATORS",
    "SOELISTYO_LOWE_OPERATORS",
    "Expression",
    "ParetoEntry",
    "SymbolicRegressor",
]


@dataclass(frozen=True)
class Operator:
    """One operator: arity, complexity, its numpy function and how it prints."""

    name: str
    arity: int
    complexity: int
    fn: Any
    template: str


def _square(a: np.ndarray) -> np.ndarray:
    return a * a


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in (
        Operator("+", 2, 1, np.add, "({0} + {1})"),
        Operator("-", 2, 1, np.subtract, "({0} - {1})"),
        Operator("*", 2, 1, np.multiply, "{0}·{1}"),
        Operator("/", 2, 1, np.divide, "{0}/{1}"),
        Operator("square", 1, 1, _square, "({0})²"),
        Operator("exp", 1, 2, np.exp, "exp({0})"),
        Operator("log", 1, 2, np.log, "log({0})"),
        Operator("sin", 1, 3, np.sin, "sin({0})"),
        Operator("sqrt", 1, 1, np.sqrt, "sqrt({0})"),
        Operator("abs", 1, 1, np.abs, "|{0}|"),
    )
}
#: Soelistyo & Lowe's (2024) operator set (all of :data:`OPERATORS`).
SOELISTYO_LOWE_OPERATORS: tuple[str, ...] = tuple(OPERATORS)

#: Losses are kept to this many significant digits, and those below LOSS_FLOOR read 0
#: (an exact fit): numpy's sums and SIMD functions can differ in the last bits with the
#: memory alignment of their operands, and the search compares losses at every step, so
#: unrounded losses made two runs with one seed in one process return different
#: (equivalent) formulas.
LOSS_DIGITS = 10
LOSS_FLOOR = 1e-12

#: A token: ("op", name), ("x", feature index) or ("c", value).
Token = tuple[str, Any]


def _subtree_end(tokens: Sequence[Token], start: int) -> int:
    """Index one past the subtree that starts at ``start``."""
    need, i = 1, start
    while need:
        kind, value = tokens[i]
        need += (OPERATORS[value].arity if kind == "op" else 0) - 1
        i += 1
    return i


@dataclass(frozen=True)
class Expression:
    """An expression tree in prefix order over features ``x0 … x{d-1}``."""

    tokens: tuple[Token, ...]

    @property
    def size(self) -> int:
        """Number of nodes (the "expression size" of Soelistyo & Lowe 2024)."""
        return len(self.tokens)

    @property
    def complexity(self) -> int:
        """Nodes weighted by the operators' complexities (variables and constants 1)."""
        return sum(OPERATORS[v].complexity if k == "op" else 1 for k, v in self.tokens)

    @property
    def features(self) -> tuple[int, ...]:
        """Feature indices the expression reads, sorted."""
        return tuple(sorted({int(v) for k, v in self.tokens if k == "x"}))

    @property
    def constants(self) -> np.ndarray:
        return np.array([v for k, v in self.tokens if k == "c"], dtype=np.float64)

    def with_constants(self, values: Sequence[float]) -> Expression:
        it = iter(values)
        return Expression(
            tuple(("c", float(next(it))) if k == "c" else (k, v) for k, v in self.tokens)
        )

    def evaluate(self, X: np.ndarray) -> np.ndarray:
        """Values on the rows of X (N, d), float64; NaN/inf where undefined."""
        X = np.asarray(X, dtype=np.float64)
        with np.errstate(all="ignore"):
            value, end = _evaluate(self.tokens, 0, X)
        assert end == len(self.tokens)
        return np.broadcast_to(value, (X.shape[0],)).astype(np.float64)

    def to_string(self, names: Sequence[str] | None = None, digits: int = 3) -> str:
        """Readable infix form, e.g. ``(z3 - 0.412·z17²)``."""
        text, _ = _render(self.tokens, 0, names, digits)
        return text

    def __str__(self) -> str:
        return self.to_string()


def _evaluate(tokens: Sequence[Token], i: int, X: np.ndarray) -> tuple[Any, int]:
    kind, value = tokens[i]
    if kind == "x":
        return X[:, value], i + 1
    if kind == "c":
        return value, i + 1
    op = OPERATORS[value]
    a, j = _evaluate(tokens, i + 1, X)
    if op.arity == 1:
        return op.fn(a), j
    b, k = _evaluate(tokens, j, X)
    return op.fn(a, b), k


def _render(
    tokens: Sequence[Token], i: int, names: Sequence[str] | None, digits: int
) -> tuple[str, int]:
    kind, value = tokens[i]
    if kind == "x":
        return (names[value] if names is not None else f"x{value}"), i + 1
    if kind == "c":
        return f"{value:.{digits}g}", i + 1
    op = OPERATORS[value]
    a, j = _render(tokens, i + 1, names, digits)
    if op.arity == 1:
        if value == "square" and tokens[i + 1][0] != "op":
            return f"{a}²", j
        return op.template.format(a), j
    b, k = _render(tokens, j, names, digits)
    if value == "/" and tokens[j] in (("op", "*"), ("op", "/")):
        b = f"({b})"
    return op.template.format(a, b), k


@dataclass(frozen=True)
class ParetoEntry:
    """The best expression found at one complexity, printed with the feature names."""

    complexity: int
    size: int
    loss: float  # MSE / var(y) on the training rows
    formula: str
    features: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "complexity": self.complexity,
            "size": self.size,
            "loss": self.loss,
            "formula": self.formula,
            "features": list(self.features),
        }


@dataclass
class _Search:
    """One GP run's state: the data, the random stream and the hall of fame."""

    X: np.ndarray
    y: np.ndarray
    var_y: float
    rng: np.random.Generator
    unary: tuple[str, ...]
    binary: tuple[str, ...]
    max_complexity: int
    hall: dict[int, tuple[float, Expression]] = field(default_factory=dict)

    def loss(self, expr: Expression) -> float:
        pred = expr.evaluate(self.X)
        if not np.isfinite(pred).all():
            return math.inf
        with np.errstate(over="ignore"):
            loss = float(np.mean((pred - self.y) ** 2) / self.var_y)
        if not math.isfinite(loss):
            return math.inf
        return 0.0 if loss < LOSS_FLOOR else float(f"{loss:.{LOSS_DIGITS}g}")

    def record(self, expr: Expression, loss: float) -> None:
        c = expr.complexity
        if math.isfinite(loss) and c <= self.max_complexity:
            best = self.hall.get(c)
            if best is None or loss < best[0]:
                self.hall[c] = (loss, expr)

    # -- random trees ------------------------------------------------------------
    def leaf(self) -> Token:
        if self.rng.random() < 0.3:
            return ("c", float(np.round(self.rng.normal(0.0, 2.0), 2)))
        return ("x", int(self.rng.integers(self.X.shape[1])))

    def tree(self, depth: int, full: bool = False) -> list[Token]:
        if depth <= 0 or (not full and self.rng.random() < 0.3):
            return [self.leaf()]
        if self.unary and self.rng.random() < 0.3:
            name = self.unary[self.rng.integers(len(self.unary))]
            return [("op", name), *self.tree(depth - 1, full)]
        name = self.binary[self.rng.integers(len(self.binary))]
        return [("op", name), *self.tree(depth - 1, full), *self.tree(depth - 1, full)]

    # -- variation ---------------------------------------------------------------
    def mutate(self, expr: Expression, other: Expression) -> Expression:
        t = list(expr.tokens)
        i = int(self.rng.integers(len(t)))
        end = _subtree_end(t, i)
        r = self.rng.random()
        if r < 0.35:  # crossover: a subtree of the other parent
            j = int(self.rng.integers(len(other.tokens)))
            t[i:end] = other.tokens[j : _subtree_end(other.tokens, j)]
        elif r < 0.5:  # subtree mutation
            t[i:end] = self.tree(int(self.rng.integers(1, 4)))
        elif r < 0.7:  # point mutation
            kind, value = t[i]
            if kind == "op":
                pool = self.unary if OPERATORS[value].arity == 1 else self.binary
                t[i] = ("op", pool[self.rng.integers(len(pool))])
            elif kind == "c":
                t[i] = ("c", value * (1 + self.rng.normal(0, 0.3)) + self.rng.normal(0, 0.1))
            else:
                t[i] = self.leaf()
        elif r < 0.8:  # hoist: a subtree replaces its ancestor
            j = int(self.rng.integers(i, end))
            t[i:end] = t[j : _subtree_end(t, j)]
        elif r < 0.9:  # insertion: wrap the subtree
            sub = t[i:end]
            if self.unary and self.rng.random() < 0.5:
                t[i:end] = [("op", self.unary[self.rng.integers(len(self.unary))]), *sub]
            else:
                name = self.binary[self.rng.integers(len(self.binary))]
                leaf = [self.leaf()]
                t[i:end] = [("op", name), *sub, *leaf] if self.rng.random() < 0.5 else [
                    ("op", name), *leaf, *sub]  # fmt: skip
        else:  # deletion: an operator gives way to one of its operands
            kind, value = t[i]
            if kind == "op":
                first = i + 1
                second = _subtree_end(t, first)
                pick = first if OPERATORS[value].arity == 1 or self.rng.random() < 0.5 else second
                t[i:end] = t[pick : _subtree_end(t, pick)]
        return Expression(tuple(t))

    def refine(self, expr: Expression, loss: float) -> tuple[Expression, float]:
        """Least-squares refinement of the constants (Levenberg–Marquardt) of ``expr``,
        whose ``loss`` is known; the better of the two with its loss."""
        from scipy.optimize import least_squares

        c0 = expr.constants
        if c0.size == 0 or c0.size >= len(self.y):
            return expr, loss

        def residual(c: np.ndarray) -> np.ndarray:
            r = expr.with_constants(c).evaluate(self.X) - self.y
            return np.where(np.isfinite(r), r, 1e6)

        try:
            fit = least_squares(residual, c0, method="lm", max_nfev=50 * (c0.size + 1))
        except (ValueError, np.linalg.LinAlgError):
            return expr, loss
        best = expr.with_constants(np.round(fit.x, 12))
        new = self.loss(best)
        return (best, new) if new < loss else (expr, loss)


def _fold_constants(tokens: Sequence[Token]) -> tuple[Token, ...]:
    """Replace every operator whose operands are all constants by its value."""

    def walk(i: int) -> tuple[list[Token], int]:
        kind, value = tokens[i]
        if kind != "op":
            return [tokens[i]], i + 1
        op = OPERATORS[value]
        a, j = walk(i + 1)
        parts = [a]
        if op.arity == 2:
            b, j = walk(j)
            parts.append(b)
        if all(len(p) == 1 and p[0][0] == "c" for p in parts):
            with np.errstate(all="ignore"):
                folded = float(op.fn(*(p[0][1] for p in parts)))
            if math.isfinite(folded):
                return [("c", folded)], j
        return [("op", value), *(t for p in parts for t in p)], j

    out, _ = walk(0)
    return tuple(out)


class SymbolicRegressor(ParamsMixin):
    """Soelistyo & Lowe's (2024) symbolic regression of one target, scikit-learn style.

    Args:
        operators: operator names from :data:`OPERATORS` (Soelistyo & Lowe 2024: all).
        max_complexity: hard limit on an expression's complexity (Soelistyo & Lowe 2024: 20).
        parsimony: weight of the complexity in the selection loss (Soelistyo & Lowe 2024: 0.001).
        population_size, generations, tournament_size: the GP's size.
        refine_every: refine the hall of fame's constants every this many generations.
        restarts: independent populations (their halls of fame are merged).
        max_rows: fit on at most this many rows (a seeded subsample).
        backend: ``"gp"`` (this module) or ``"pysr"`` (needs PySR and Julia).
        seed: seed of the search.

    After ``fit``: ``formula_`` (the chosen expression, printed), ``complexity_``,
    ``size_``, ``features_`` (columns it reads), ``loss_`` (MSE / var(y)),
    ``pareto_front_`` (a :class:`ParetoEntry` per complexity that beats every simpler
    one) and, for the GP backend, ``expression_`` (:class:`Expression`).
    """

    def __init__(
        self,
        operators: Sequence[str] = SOELISTYO_LOWE_OPERATORS,
        max_complexity: int = 20,
        parsimony: float = 0.001,
        population_size: int = 400,
        generations: int = 60,
        tournament_size: int = 7,
        refine_every: int = 5,
        restarts: int = 2,
        max_rows: int = 2000,
        backend: str = "gp",
        seed: int = 0,
    ) -> None:
        self.operators = operators
        self.max_complexity = max_complexity
        self.parsimony = parsimony
        self.population_size = population_size
        self.generations = generations
        self.tournament_size = tournament_size
        self.refine_every = refine_every
        self.restarts = restarts
        self.max_rows = max_rows
        self.backend = backend
        self.seed = seed

    def _check(self) -> None:
        unknown = sorted(set(self.operators) - set(OPERATORS))
        if unknown:
            raise ValueError(f"unknown operators {unknown}; choose from {list(OPERATORS)}")
        if not any(OPERATORS[o].arity == 2 for o in self.operators):
            raise ValueError("operators must include at least one binary operator")
        if self.max_complexity < 1 or self.population_size < 4 or self.generations < 1:
            raise ValueError(
                "max_complexity >= 1, population_size >= 4 and generations >= 1 are required"
            )
        if self.backend not in ("gp", "pysr"):
            raise ValueError(f"backend must be 'gp' or 'pysr', got {self.backend!r}")

    def fit(self, X: Any, y: Any, feature_names: Sequence[str] | None = None) -> SymbolicRegressor:
        """Search expressions of the columns of X (N, d) for y (N,); ``feature_names``
        (default ``x0 …``) name the columns in the printed formulas."""
        self._check()
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if X.ndim != 2 or X.shape[0] != y.shape[0] or X.shape[0] < 2:
            raise ValueError(
                f"X must be (N, d) and y (N,) with N >= 2, got {X.shape} and {y.shape}"
            )
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise ValueError("X and y must be finite")
        rng = np.random.default_rng(self.seed)
        if X.shape[0] > self.max_rows:
            rows = np.sort(rng.choice(X.shape[0], self.max_rows, replace=False))
            X, y = X[rows], y[rows]
        self.n_features_in_ = X.shape[1]
        names = (
            [f"x{j}" for j in range(X.shape[1])] if feature_names is None else list(feature_names)
        )
        if len(names) != X.shape[1]:
            raise ValueError(f"feature_names has {len(names)} names for {X.shape[1]} columns")
        self.feature_names_in_ = tuple(names)
        if self.backend == "pysr":
            return self._fit_pysr(X, y)
        var_y = float(np.var(y))
        if var_y <= (1e-12 * max(1.0, float(np.mean(y)) ** 2)):  # a constant target
            expr = Expression((("c", float(np.mean(y))),))
            self.expression_ = expr
            entry = ParetoEntry(1, 1, 0.0, expr.to_string(names), ())
            self.pareto_front_ = [entry]
            self._set_chosen(entry)
            return self
        unary = tuple(o for o in self.operators if OPERATORS[o].arity == 1)
        binary = tuple(o for o in self.operators if OPERATORS[o].arity == 2)
        hall: dict[int, tuple[float, Expression]] = {}
        for restart in range(self.restarts):
            search = _Search(X, y, var_y, np.random.default_rng([self.seed, restart]), unary,
                             binary, self.max_complexity)  # fmt: skip
            self._evolve(search)
            for c, (loss, expr) in search.hall.items():
                if c not in hall or loss < hall[c][0]:
                    hall[c] = (loss, expr)
        front, best = [], math.inf
        for c in sorted(hall):
            loss, expr = hall[c]
            if loss < best:  # keep only entries that beat every simpler one
                front.append((c, loss, expr))
                best = loss
        if not front:
            raise RuntimeError("no finite expression was found; check X and y")
        c, loss, expr = min(front, key=lambda e: e[1] + self.parsimony * e[0])
        self.expression_ = expr
        self.pareto_front_ = [
            ParetoEntry(c, e.size, lo, e.to_string(names), e.features) for c, lo, e in front
        ]
        self._set_chosen(ParetoEntry(c, expr.size, loss, expr.to_string(names), expr.features))
        return self

    def _set_chosen(self, entry: ParetoEntry) -> None:
        self.formula_, self.complexity_, self.size_ = entry.formula, entry.complexity, entry.size
        self.features_, self.loss_ = entry.features, entry.loss

    def _evolve(self, s: _Search) -> None:
        def score(expr: Expression) -> tuple[float, float]:
            c = expr.complexity
            if c > self.max_complexity:
                return math.inf, math.inf
            loss = s.loss(expr)
            s.record(expr, loss)
            return loss, loss + self.parsimony * c

        # the mean and each feature alone start the population, so the simplest
        # answers are always on the front
        pop: list[Expression] = [Expression((("c", float(np.mean(s.y))),))]
        pop += [Expression((("x", j),)) for j in range(s.X.shape[1])]
        for i in range(max(0, self.population_size - len(pop))):
            depth = 1 + i % 4
            pop.append(Expression(tuple(s.tree(depth, full=bool(i % 2)))))
        fitness = np.array([score(e)[1] for e in pop])
        for gen in range(self.generations):
            children: list[Expression] = []
            for _ in range(self.population_size):
                a = self._tournament(pop, fitness, s.rng)
                b = self._tournament(pop, fitness, s.rng)
                child = s.mutate(a, b)
                children.append(Expression(_fold_constants(child.tokens)))
            child_fit = np.array([score(e)[1] for e in children])
            # elitism: keep the better half of parents and children together
            both = pop + children
            both_fit = np.concatenate([fitness, child_fit])
            keep = np.argsort(both_fit, kind="stable")[: self.population_size]
            pop, fitness = [both[i] for i in keep], both_fit[keep]
            if (gen + 1) % self.refine_every == 0 or gen == self.generations - 1:
                for loss, expr in list(s.hall.values()):
                    s.record(*s.refine(expr, loss))
                # the hall of fame re-enters the population, with the losses it holds
                elites = [e for _, e in s.hall.values()]
                elite_fit = np.array([lo + self.parsimony * c for c, (lo, _) in s.hall.items()])
                worst = np.argsort(fitness, kind="stable")[::-1][: len(elites)]
                for slot, expr, f in zip(worst, elites, elite_fit, strict=False):
                    pop[slot], fitness[slot] = expr, f

    def _tournament(
        self, pop: list[Expression], fitness: np.ndarray, rng: np.random.Generator
    ) -> Expression:
        idx = rng.integers(len(pop), size=self.tournament_size)
        return pop[int(idx[np.argmin(fitness[idx])])]

    def _fit_pysr(self, X: np.ndarray, y: np.ndarray) -> SymbolicRegressor:
        """Fit with PySR (same operators, complexities, parsimony and limit)."""
        try:
            from pysr import PySRRegressor
        except ImportError as exc:
            raise ImportError(
                "backend='pysr' needs PySR and a Julia installation (pip install pysr); "
                "use backend='gp' on machines without Julia"
            ) from exc
        model = PySRRegressor(
            binary_operators=[o for o in self.operators if OPERATORS[o].arity == 2],
            unary_operators=[o for o in self.operators if OPERATORS[o].arity == 1],
            complexity_of_operators={o: OPERATORS[o].complexity for o in self.operators},
            parsimony=self.parsimony,
            maxsize=self.max_complexity,
            random_state=self.seed,
            deterministic=True,
            parallelism="serial",
        )
        model.fit(X, y / 1.0, variable_names=list(self.feature_names_in_))
        var_y = float(np.var(y)) or 1.0
        self.pysr_model_, self.expression_ = model, None

        def entry(row: Any) -> ParetoEntry:
            import sympy

            expr = row["sympy_format"]
            used = {str(s) for s in expr.free_symbols}
            features = tuple(j for j, n in enumerate(self.feature_names_in_) if n in used)
            size = sum(1 for _ in sympy.preorder_traversal(expr))
            return ParetoEntry(int(row["complexity"]), size, float(row["loss"]) / var_y,
                               str(expr), features)  # fmt: skip

        self.pareto_front_ = [entry(row) for _, row in model.equations_.iterrows()]
        self._set_chosen(entry(model.get_best()))
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The chosen expression's values on X (N, d)."""
        if not hasattr(self, "n_features_in_"):
            raise ValueError("this SymbolicRegressor is not fitted; call fit(X, y) first")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X must have {self.n_features_in_} columns, got shape {X.shape}")
        if self.backend == "pysr":
            return np.asarray(self.pysr_model_.predict(X), dtype=np.float64)
        return self.expression_.evaluate(X)
