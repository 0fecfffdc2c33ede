"""synthoct-bench: synthetic OCT images paired with NLME longitudinal data.

The benchmark of Deltadahl et al., "A framework for evaluating predictive
models using synthetic image covariates and longitudinal data": latents z
drive both an image generator and, through three chosen dims η, a nonlinear
mixed-effects model of five longitudinal series at controlled noise levels.
"""

__version__ = "0.1.0"
