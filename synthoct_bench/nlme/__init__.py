"""The NLME model of the paper: decoder (simulation) and encoder (empirical Bayes)."""

from synthoct_bench.nlme.reference import OBS_TIMES, PAPER_THETA, reference_predict

__all__ = ["OBS_TIMES", "PAPER_THETA", "reference_predict"]
