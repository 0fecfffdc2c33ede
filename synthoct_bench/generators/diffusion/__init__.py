"""Latent-conditioned Stable Diffusion, the generator of Deltadahl et al. 2024:
``pipeline.py`` (z -> encoder_hidden_states, the generator, SD 1.5's configs),
``training.py`` (the fine-tune recipe) and ``cost.py`` (FLOPs per image, GPU peaks)."""

from synthoct_bench.lazy import lazy_exports

_P = "synthoct_bench.generators.diffusion.pipeline"
_LAZY = {
    n: f"{_P}:{n}"
    for n in (
        "LatentDiffusionGenerator", "load_latent_diffusion", "latent_to_prompt_embeds",
        "make_scheduler", "sd15_unet_config", "sd15_vae_config", "sd15_scheduler_config",
        "PROMPT_EMBED_SHAPE", "SCHEDULERS",
    )
}
__all__ = list(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
