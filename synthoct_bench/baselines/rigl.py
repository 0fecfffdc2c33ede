"""RigL sparse training (Evci et al. 2020) as Soelistyo & Lowe 2024 adapt it, and the
post-training pruning.

Soelistyo & Lowe 2024 (supplement, section 2.3) trains its sparse head with RigL: a dense
warm-up, then every ΔT steps each layer drops its ``k`` smallest-magnitude active
weights and regrows the ``k`` inactive ones with the largest gradient magnitude
(regrown at 0), ``k = α/2·(1 + cos(tπ/T_end))·(1 − s_l)·N_l``, so each layer keeps
its density exactly; after ``T_end`` the topology is frozen. Layer sparsities
follow the Erdős–Rényi scheme. After training, leaf weights and bias weights are
removed without changing the outputs, and the head's expression size is counted.

Where Soelistyo & Lowe 2024 contradict themselves this module takes the reading its own
algorithm box and RigL's paper support, and says so:

- *S is the sparsity* (the fraction of weights that are zero, "S = 0.951"). The
  paper's prose also says layers "possess S × N^l active weights" and that
  "(1 − S) × N^l weights are deactivated", the complement; a layer here keeps
  ``(1 − s_l)·N_l`` active weights.
- *T_end = 0.75 is a fraction* of the sparse (post-warm-up) steps; the algorithm
  box compares it with a step count. Here it is ``t_end · (total − warm-up)`` steps.
- *The first topology.* Soelistyo & Lowe 2024 replace RigL's random initial mask by dense
  training for the warm-up; the mask at the end of the warm-up keeps each layer's
  largest-magnitude weights (the paper: useful paths "reinforced and retained when
  the first pruning step is implemented").
- *Bias weights* add ``w · f(b)`` to their target (the source neuron's activation of
  its bias, not "the product of the source neuron's bias and the weight"): that is
  what is folded into the target's bias, so the outputs stay exactly the same.
- *Expression size.* The seed derives 8(M + 1) nodes for a Mish neuron with M
  inputs (its Fig. 3 trees and its eq. 5), then writes 8M_j + 1 in eq. 8. This
  module counts ``8(M_j + 1)`` per active hidden neuron and ``4M_j + 1`` per output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "SOELISTYO_LOWE_RIGL",
    "RigLConfig",
    "erdos_renyi_densities",
    "RigL",
    "prune_leaf_and_bias_weights",
    "expression_size",
    "active_inputs",
]


@dataclass(frozen=True)
class RigLConfig:
    """RigL's settings; the defaults are Soelistyo & Lowe's (2024) tuned values.

    ``sparsity``: network-wide fraction of zero weights (S). ``delta_t``: optimiser
    steps between topology updates (ΔT). ``update_fraction``: its initial value (α).
    ``t_end``: fraction of the sparse steps after which the topology is frozen.
    """

    sparsity: float = 0.951
    delta_t: int = 115
    update_fraction: float = 0.758
    t_end: float = 0.75

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if isinstance(self.delta_t, bool) or not isinstance(self.delta_t, int) or self.delta_t < 1:
            raise ValueError(f"delta_t must be a positive int, got {self.delta_t!r}")
        if not 0.0 <= self.update_fraction <= 1.0:
            raise ValueError(f"update_fraction must be in [0, 1], got {self.update_fraction}")
        if not 0.0 < self.t_end <= 1.0:
            raise ValueError(f"t_end must be in (0, 1], got {self.t_end}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Soelistyo & Lowe's (2024) values (S = 0.951, ΔT = 115, α = 0.758, T_end = 0.75).
SOELISTYO_LOWE_RIGL = RigLConfig()


def erdos_renyi_densities(shapes: Sequence[tuple[int, int]], sparsity: float) -> np.ndarray:
    """Per-layer densities (fraction of weights kept) of the Erdős–Rényi scheme.

    ``shapes``: (n_out, n_in) of each layer. Density ∝ (n_in + n_out)/(n_in·n_out),
    scaled so the network keeps ``(1 − sparsity)`` of all its weights; a layer whose
    density would exceed 1 is made dense and the others rescaled (Evci et al.).
    """
    sizes = np.array([o * i for o, i in shapes], dtype=np.float64)
    raw = np.array([(o + i) / (o * i) for o, i in shapes], dtype=np.float64)
    if sizes.size == 0 or (sizes <= 0).any():
        raise ValueError(f"shapes must be non-empty (n_out, n_in) pairs, got {list(shapes)}")
    kept_total = (1.0 - sparsity) * sizes.sum()
    dense = np.zeros(len(shapes), dtype=bool)
    while True:
        budget = kept_total - sizes[dense].sum()
        eps = budget / float((raw[~dense] * sizes[~dense]).sum()) if (~dense).any() else 0.0
        density = np.where(dense, 1.0, eps * raw)
        over = (density > 1.0) & ~dense
        if not over.any():
            return np.clip(density, 0.0, 1.0)
        dense |= over


def _linears(model: nn.Module | Sequence[nn.Linear]) -> list[nn.Linear]:
    layers = (
        [m for m in model.modules() if isinstance(m, nn.Linear)]
        if isinstance(model, nn.Module)
        else list(model)
    )
    if not layers:
        raise ValueError("the model has no nn.Linear layers to sparsify")
    return layers


class RigL:
    """Masks over a model's ``nn.Linear`` weights and Soelistyo & Lowe's (2024) RigL schedule.

    Use in the training loop, after ``loss.backward()``::

        rigl = RigL(head, config, total_steps, warmup_steps)
        ...
        loss.backward()
        if rigl.step(step, optimizer):      # True: a topology update replaced this step
            continue
        optimizer.step()
        rigl.apply_masks()

    Before ``warmup_steps`` nothing is masked. At ``warmup_steps`` each layer keeps
    its ``n_active`` largest weights. Every ``delta_t`` steps after that, while
    under ``t_end`` of the sparse steps, the topology is updated (drop by magnitude,
    regrow by gradient magnitude, regrown weights and their optimiser moments at 0);
    on other steps the inactive weights' gradients are zeroed.
    """

    def __init__(
        self,
        model: nn.Module | Sequence[nn.Linear],
        config: RigLConfig = SOELISTYO_LOWE_RIGL,
        total_steps: int = 1,
        warmup_steps: int = 0,
    ) -> None:
        if warmup_steps < 0 or total_steps <= warmup_steps:
            raise ValueError(
                f"need 0 <= warmup_steps < total_steps, got {warmup_steps} and {total_steps}"
            )
        self.layers = _linears(model)
        self.config = config
        self.total_steps, self.warmup_steps = int(total_steps), int(warmup_steps)
        shapes = [tuple(layer.weight.shape) for layer in self.layers]
        self.densities = erdos_renyi_densities(shapes, config.sparsity)
        #: active weights each layer keeps: round(density · N_l), at least 1.
        self.n_active = [
            max(1, int(round(d * o * i))) for d, (o, i) in zip(self.densities, shapes, strict=True)
        ]
        self.masks: list[torch.Tensor] | None = None
        self.updates = 0

    @property
    def end_step(self) -> int:
        """Sparse steps (after the warm-up) after which the topology is frozen."""
        return int(self.config.t_end * (self.total_steps - self.warmup_steps))

    def fraction_at(self, t: int) -> float:
        """Cosine-annealed update fraction α/2·(1 + cos(tπ/T_end)) at sparse step ``t``."""
        return self.config.update_fraction / 2 * (1 + math.cos(t * math.pi / max(self.end_step, 1)))

    @torch.no_grad()
    def start(self) -> None:
        """End of the warm-up: keep each layer's ``n_active`` largest-magnitude weights."""
        self.masks = []
        for layer, n in zip(self.layers, self.n_active, strict=True):
            w = layer.weight.abs().flatten()
            mask = torch.zeros_like(w, dtype=torch.bool)
            mask[_top_k(w, n)] = True
            self.masks.append(mask.view_as(layer.weight))
        self.apply_masks()

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zero the inactive weights (after an optimiser step could have moved them)."""
        if self.masks is None:
            return
        for layer, mask in zip(self.layers, self.masks, strict=True):
            layer.weight.mul_(mask)

    @torch.no_grad()
    def step(self, step: int, optimizer: torch.optim.Optimizer | None = None) -> bool:
        """Apply the schedule at optimiser step ``step`` (0-based), after ``backward``.

        Returns True when this step was a topology update, which replaces the weight
        update (the paper's algorithm); then skip ``optimizer.step()``.
        """
        if step < self.warmup_steps:
            return False
        if self.masks is None:
            self.start()
        t = step - self.warmup_steps
        if t > 0 and t % self.config.delta_t == 0 and t < self.end_step:
            self._update_topology(t, optimizer)
            self.updates += 1
            return True
        for layer, mask in zip(self.layers, self.masks, strict=True):
            if layer.weight.grad is not None:
                layer.weight.grad.mul_(mask)
        return False

    def _update_topology(self, t: int, optimizer: torch.optim.Optimizer | None) -> None:
        fraction = self.fraction_at(t)
        assert self.masks is not None
        for i, (layer, n) in enumerate(zip(self.layers, self.n_active, strict=True)):
            grad = layer.weight.grad
            if grad is None:
                continue
            k = min(int(fraction * n), n, layer.weight.numel() - n)
            if k <= 0:
                continue
            old = self.masks[i].flatten()
            score = torch.where(old, layer.weight.abs().flatten(), torch.tensor(-1.0))
            keep = torch.zeros_like(old)
            keep[_top_k(score, n - k)] = True
            grow_score = torch.where(keep, torch.tensor(-1.0), grad.abs().flatten())
            grow = torch.zeros_like(old)
            grow[_top_k(grow_score, k)] = True
            new = keep | grow
            regrown = (grow & ~old).view_as(layer.weight)
            layer.weight.mul_(new.view_as(layer.weight))
            self.masks[i] = new.view_as(layer.weight)
            if optimizer is not None:
                state = optimizer.state.get(layer.weight, {})
                for value in state.values():
                    if torch.is_tensor(value) and value.shape == layer.weight.shape:
                        value.masked_fill_(regrown, 0.0)

    def layer_density(self) -> list[float]:
        """Fraction of nonzero weights in each layer now."""
        return [float((layer.weight != 0).float().mean()) for layer in self.layers]


def _top_k(score: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest scores; ties broken by index, so runs are repeatable."""
    if k <= 0:
        return torch.zeros(0, dtype=torch.long)
    order = np.lexsort((np.arange(score.numel()), -score.detach().cpu().double().numpy()))
    return torch.from_numpy(order[:k].copy())


def _mish(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.mish(x)


@torch.no_grad()
def prune_leaf_and_bias_weights(
    model: nn.Module | Sequence[nn.Linear], activation: Any = _mish
) -> dict[str, int]:
    """Remove weights that cannot change the outputs, in Soelistyo & Lowe's (2024) order; in place.

    The layers are a chain of ``nn.Linear`` with ``activation`` between them and none
    after the last. *Leaf weights* feed a hidden neuron none of whose outgoing weights
    is nonzero; they are zeroed from the output backwards, so the removal cascades.
    *Bias weights* leave a hidden neuron with no nonzero incoming weight: it outputs
    the constant ``activation(bias)``, so each such weight ``w`` is folded into its
    target's bias (``b += w·activation(bias)``) and zeroed, from the input forwards.
    Returns how many of each were removed.
    """
    layers = _linears(model)
    leaf = bias = 0
    for i in range(len(layers) - 2, -1, -1):
        outgoing = (layers[i + 1].weight != 0).any(dim=0)
        dead = ~outgoing & (layers[i].weight != 0).any(dim=1)
        leaf += int((layers[i].weight[dead] != 0).sum())
        layers[i].weight[~outgoing] = 0.0
    for i in range(len(layers) - 1):
        source, target = layers[i], layers[i + 1]
        constant = ~(source.weight != 0).any(dim=1)
        if not constant.any():
            continue
        value = activation(source.bias[constant]) if source.bias is not None else None
        w = target.weight[:, constant]
        bias += int((w != 0).sum())
        if value is not None and target.bias is not None:
            target.bias.add_(w @ value)
        target.weight[:, constant] = 0.0
    return {"leaf_weights": leaf, "bias_weights": bias}


def active_inputs(model: nn.Module | Sequence[nn.Linear]) -> tuple[int, ...]:
    """Input features with at least one nonzero weight in the first layer."""
    first = _linears(model)[0]
    return tuple(int(j) for j in torch.nonzero((first.weight != 0).any(dim=0)).flatten())


def expression_size(model: nn.Module | Sequence[nn.Linear]) -> int:
    """Soelistyo & Lowe's (2024) expression size of a chain of Linear layers with Mish between them.

    Each hidden neuron with M ≥ 1 nonzero incoming weights counts 8(M + 1) nodes
    (Mish of bias + Σ w·x), each output neuron 4M + 1 (no activation); hidden neurons
    without inputs are constants, already folded by :func:`prune_leaf_and_bias_weights`.
    A dense layer of N neurons on M inputs so counts 8N(M + 1), eq. 5 of Soelistyo & Lowe 2024.
    """
    layers = _linears(model)
    size = 0
    for i, layer in enumerate(layers):
        m = (layer.weight != 0).sum(dim=1)
        if i == len(layers) - 1:
            size += int((4 * m + 1).sum())
        else:
            size += int((8 * (m[m > 0] + 1)).sum())
    return size
