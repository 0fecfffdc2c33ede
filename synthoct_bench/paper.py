"""The paper's published figures (Deltadahl et al., Tables 1 and 2), in one place.

Keys use this package's names: ``eta_noisy`` is the paper's η̂, ``eta_ebe`` its
η_approx, ``eta_pred`` the image model's prediction; Table 2's columns are
``true``, ``predicted``, ``approximate``, ``average``, ``random``.
:data:`PAPER_SYMBOLS` maps our names to the paper's for printed table headers.
"""

from __future__ import annotations

__all__ = [
    "CITATION_BIBTEX",
    "PAPER_SYMBOLS",
    "PAPER_TABLE1",
    "PAPER_FRACTION_OF_MAX",
    "PAPER_TABLE2",
    "TABLE2_COLUMNS",
    "paper_symbol",
]

#: The one citation of the paper: the README and the dataset card both print exactly this.
CITATION_BIBTEX = """\
@misc{deltadahl2024framework,
  title         = {A Framework for Evaluating Predictive Models Using Synthetic Image
                   Covariates and Longitudinal Data},
  author        = {Deltadahl, Simon and Vall, Andreu and Ivaturi, Vijay and Korsbo, Niklas},
  year          = {2024},
  eprint        = {2410.16177},
  archivePrefix = {arXiv},
  note          = {Data and models: https://doi.org/10.57967/hf/2089;
                   code: https://github.com/Deltadahl/Image-Longitudinal}
}"""

#: Our name -> the paper's symbol (ASCII), for printed table headers.
PAPER_SYMBOLS: dict[str, str] = {
    "eta_noisy": "eta_hat",
    "eta_ebe": "eta_approx",
    "eta_pred": "eta_pred",
    "noise": "sigma2",
}
#: Table 2's columns in the paper's order.
TABLE2_COLUMNS: tuple[str, ...] = ("true", "predicted", "approximate", "average", "random")


def paper_symbol(name: str) -> str:
    """The paper's symbol for one of our names (unchanged if it has none)."""
    return PAPER_SYMBOLS.get(name, name)


#: Table 1: noise level -> (reference, compared) -> ((MSE, low, high), (R², low, high)).
#: Our column names; the paper writes eta_noisy as η̂ and eta_ebe as η_approx.
PAPER_TABLE1: dict[int, dict[tuple[str, str], tuple[tuple[float, ...], tuple[float, ...]]]] = {
    0: {
        ("eta_noisy", "eta_pred"): ((0.3993, 0.3973, 0.4014), (0.6007, 0.5990, 0.6025)),
        ("eta_noisy", "eta_ebe"): ((0.3048, 0.3023, 0.3075), (0.6952, 0.6927, 0.6975)),
        ("eta_ebe", "eta_pred"): ((0.2383, 0.2370, 0.2397), (0.6465, 0.6444, 0.6488)),
    },
    1: {
        ("eta_noisy", "eta_pred"): ((0.6983, 0.6948, 0.7018), (0.3017, 0.2993, 0.3038)),
        ("eta_noisy", "eta_ebe"): ((0.3044, 0.3020, 0.3069), (0.6956, 0.6932, 0.6980)),
        ("eta_ebe", "eta_pred"): ((0.4691, 0.4667, 0.4716), (0.3042, 0.3012, 0.3072)),
    },
    9: {
        ("eta_noisy", "eta_pred"): ((0.9456, 0.9409, 0.9503), (0.0544, 0.0530, 0.0557)),
        ("eta_noisy", "eta_ebe"): ((0.3052, 0.3027, 0.3075), (0.6948, 0.6927, 0.6972)),
        ("eta_ebe", "eta_pred"): ((0.5720, 0.5692, 0.5750), (0.0599, 0.0580, 0.0617)),
    },
    18: {
        ("eta_noisy", "eta_pred"): ((0.9729, 0.9680, 0.9775), (0.0271, 0.0261, 0.0281)),
        ("eta_noisy", "eta_ebe"): ((0.3035, 0.3009, 0.3060), (0.6965, 0.6942, 0.6989)),
        ("eta_ebe", "eta_pred"): ((0.6520, 0.6489, 0.6550), (0.0312, 0.0301, 0.0325)),
    },
    49: {
        ("eta_noisy", "eta_pred"): ((0.9936, 0.9888, 0.9985), (0.0064, 0.0056, 0.0072)),
        ("eta_noisy", "eta_ebe"): ((0.3049, 0.3022, 0.3077), (0.6951, 0.6927, 0.6975)),
        ("eta_ebe", "eta_pred"): ((0.6657, 0.6623, 0.6688), (0.0124, 0.0116, 0.0132)),
    },
}
#: The paper's fraction of max (ResNet18, η̂ vs η_pred) per σ².
PAPER_FRACTION_OF_MAX: dict[int, float] = {
    0: 0.6007,
    1: 0.6035,
    9: 0.5436,
    18: 0.5149,
    49: 0.3201,
}
#: Table 2: noise level -> column -> (mean conditional NLL, low, high).
PAPER_TABLE2: dict[int, dict[str, tuple[float, float, float]]] = {
    0: {
        "true": (-67, -67, -67),
        "predicted": (-59, -60, -59),
        "approximate": (-63, -63, -63),
        "average": (1616, 1587, 1647),
        "random": (2896, 2861, 2934),
    },
    1: {
        "true": (1178, 1159, 1200),
        "predicted": (372, 363, 380),
        "approximate": (1159, 1140, 1178),
        "average": (1616, 1587, 1647),
        "random": (2915, 2874, 2954),
    },
    9: {
        "true": (2299, 2270, 2333),
        "predicted": (1170, 1145, 1194),
        "approximate": (2249, 2214, 2282),
        "average": (1616, 1586, 1645),
        "random": (2899, 2863, 2935),
    },
    18: {
        "true": (2478, 2444, 2510),
        "predicted": (1287, 1260, 1313),
        "approximate": (2430, 2395, 2466),
        "average": (1616, 1586, 1647),
        "random": (2926, 2886, 2968),
    },
    49: {
        "true": (2622, 2586, 2658),
        "predicted": (1410, 1381, 1438),
        "approximate": (2584, 2546, 2620),
        "average": (1616, 1583, 1647),
        "random": (2906, 2868, 2946),
    },
}
