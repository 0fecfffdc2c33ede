"""How large is each loss term's gradient where a sensitivity-grid cell starts?

SGD steps by the gradient as it is; Adam and RMSprop divide out its scale. So the
same learning rate means a different step for SGD under each likelihood. This
prints the global L2 norm of the gradient of each term (reconstruction, KL) and of
the whole loss, at the first step of a reduced-grid cell (the small conv VAE at
32 px, latent 32, batch 64 of phantom images, the decoder started at their mean
intensity), under the objective's own likelihood and under ``korkic2021``:

    .venv/bin/python benchmarks/sweep_gradient_scale.py --objective vae
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from synthoct_bench.generators.vae.objectives import get_objective
from synthoct_bench.generators.vae.small import SmallConvVAE, SmallConvVAEConfig
from synthoct_bench.generators.vae.sweep import SweepGrid
from synthoct_bench.generators.vae.training import PhantomImageSource, loss_terms, mean_intensity


def gradient_norm(loss: torch.Tensor, model: torch.nn.Module) -> float:
    """Global L2 norm of d loss / d parameters (the gradients are cleared first)."""
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return float(torch.sqrt(sum((g**2).sum() for g in grads)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # objectives whose reconstruction term is its own differentiable term (IWAE's
    # bound and LogCosh's loss do not split into one)
    ap.add_argument("--objective", default="vae", choices=("vae", "infovae"))
    ap.add_argument("--latent-dim", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    grid = SweepGrid()
    torch.set_num_threads(1)
    source = PhantomImageSource(grid.n, grid.image_size, seed=args.seed)
    x = source.get(np.arange(grid.batch_size))
    mean = mean_intensity(source)  # as a fresh training run starts its decoder
    print("| likelihood | term | value | gradient norm |\n|---|---|---|---|")
    for likelihood in (None, "korkic2021"):
        torch.manual_seed(args.seed)
        model = SmallConvVAE(SmallConvVAEConfig(image_size=grid.image_size,
                                                latent_dim=args.latent_dim))  # fmt: skip
        model.init_output_bias(mean)
        settings = None if likelihood is None else {"likelihood": likelihood}
        objective = get_objective(args.objective, settings)
        terms = loss_terms(model, objective, x, grid.n, 1.0,
                            torch.Generator().manual_seed(args.seed))  # fmt: skip
        name = likelihood or "the objective's own"
        rows = {"reconstruction": terms["recon"], "KL as weighted": terms["loss"] - terms["recon"],
                "loss": terms["loss"]}  # fmt: skip
        for key, value in rows.items():
            norm = gradient_norm(value, model)
            print(f"| {name} | {key} | {float(value.detach()):.5g} | {norm:.4g} |")


if __name__ == "__main__":
    main()
