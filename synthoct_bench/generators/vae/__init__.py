"""The VAE family: architectures, objectives, training, run folders and the sweep.

``base.py`` (what every VAE shares, the architecture registry, ``load_vae``),
``paper.py`` (the β-VAE of Deltadahl et al. 2024, Table 3), ``small.py`` (the
small conv VAE of Soelistyo & Lowe 2024), ``generator.py`` (a decoder as an image
generator), ``objectives/`` (one file per training objective), ``data.py``
(image sources), ``training.py`` (``train_vae``), ``run.py`` (``synthoct vae``'s
run folders) and ``sweep.py`` (the sensitivity grid of Korkic 2021).
"""

from synthoct_bench.lazy import lazy_exports

_P = "synthoct_bench.generators.vae"
_LAZY = {
    **{n: f"{_P}.base:{n}" for n in (
        "ARCHITECTURES", "CONFIG_NAME", "WEIGHTS_NAME", "VAEBase", "build_vae",
        "get_architecture", "kl_divergence", "load_vae", "resolve_vae_folder",
    )},
    **{n: f"{_P}.paper:{n}" for n in ("BetaVAE", "BetaVAEConfig", "PAPER_DECODER_WIDTHS")},
    **{n: f"{_P}.small:{n}" for n in ("SmallConvVAE", "SmallConvVAEConfig")},
    **{n: f"{_P}.generator:{n}" for n in ("BetaVAEGenerator", "SELECTION_NAME", "saved_eta_dims")},
    **{n: f"{_P}.objectives:{n}" for n in ("OBJECTIVES", "get_objective")},
    **{n: f"{_P}.training:{n}" for n in ("VAETrainingConfig", "train_vae", "TrainingDiverged")},
}
__all__ = list(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
