"""The works this project implements, cited one way everywhere.

Code, docs, CLI help and reports name a work by its authors and year (e.g.
"Korkic 2021"); this list gives each one's title and where it appeared, for the
README's and the dataset card's References sections and for ``CITATION.cff``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Work", "WORKS", "references_markdown"]


@dataclass(frozen=True)
class Work:
    """One cited work: how the project names it, its title, where it appeared, and what
    part of the project follows it."""

    #: the short name used everywhere, "Authors Year"
    cite: str
    authors: str
    year: int | None
    title: str
    venue: str
    #: what in synthoct-bench implements it
    used_for: str


WORKS: tuple[Work, ...] = (
    Work(
        cite="Deltadahl et al. 2024",
        authors="Simon Deltadahl, Andreu Vall, Vijay Ivaturi, Niklas Korsbo",
        year=2024,
        title="A framework for evaluating predictive models using synthetic image covariates "
        "and longitudinal data",
        venue="arXiv:2410.16177",
        used_for="the benchmark itself: latents, generator chain, NLME model, EBE targets, "
        "noise levels, Tables 1 and 2",
    ),
    Work(
        cite="Ramisetti 2024",
        authors="Nikhila Ramisetti",
        year=2024,
        title="Adaptive Augmentation in Latent Space using Autoencoders",
        venue="MSc dissertation, University of Aberdeen",
        used_for="latent-space augmentation and its adaptive schedule (synthoct_bench.augment)",
    ),
    Work(
        cite="Soelistyo & Lowe 2024",
        authors="Christopher J. Soelistyo, Alan R. Lowe",
        year=2024,
        title="Discovering interpretable models of scientific image data with deep learning",
        venue="CVPR Workshops, arXiv:2402.03115",
        used_for="the small conv β-TCVAE, RigL sparse heads and symbolic formulas "
        "(the tcvae-dense, tcvae-sparse and tcvae-symbolic baselines)",
    ),
    Work(
        cite="Korkic 2021",
        authors="Armin Korkic",
        year=2021,
        title="Benchmarking the hyper-parameter sensitivity of VAE models for cancer treatment",
        venue="Thesis, TU Delft",
        used_for="the VAE objectives' constants and the sensitivity sweep (synthoct vae sweep)",
    ),
    Work(
        cite="NLME and generative AI (slides)",
        authors="",
        year=None,
        title="The Connection Between NLME and Generative AI",
        venue="Slides",
        used_for="the framing of the NLME model as a decoder (simulation) and an encoder (EBE)",
    ),
)


def references_markdown() -> str:
    """The References list in Markdown, one bullet per work."""
    lines = []
    for w in WORKS:
        who = f"{w.authors} ({w.year}). " if w.authors else ""
        lines.append(f"- **{w.cite}**: {who}*{w.title}*. {w.venue}. Used for {w.used_for}.")
    return "\n".join(lines)
