"""Query strategies: pure functions of the student's scores, and the registry that builds them by name.

Each module below registers its strategies (`strategies.registry.register`); importing the package
imports them all, so `make_strategy(name, params)` knows every one.
"""
from quarry_al.strategies import (contrastive, diversity, error_reduction, hybrid, ifd, model_change,  # noqa: F401
                                  random_sampling, superfilter, token_entropy, uncertainty)
from quarry_al.strategies.base import (EMBEDDINGS, IFD, MC_PROBS, TOKEN_ENTROPY, QueryStrategy, Scores, SelectionState,
                                       StrategyError, StrategyParamError, mc_passes_of, needs_of, top_k_unlabeled)
from quarry_al.strategies.contrastive import CAL
from quarry_al.strategies.diversity import CoreSet, InformationDensity, KMeansSampling
from quarry_al.strategies.error_reduction import ExpectedErrorReduction
from quarry_al.strategies.hybrid import Adaptive, TwoStage, WeightedMixture
from quarry_al.strategies.ifd import IFDSampling
from quarry_al.strategies.model_change import BADGE, ExpectedGradientLength
from quarry_al.strategies.random_sampling import RandomSampling
from quarry_al.strategies.registry import STRATEGIES, SUBSAMPLE_PARAMS, make_strategy
from quarry_al.strategies.subsample import Subsampled
from quarry_al.strategies.superfilter import Superfilter
from quarry_al.strategies.token_entropy import TokenEntropy
from quarry_al.strategies.uncertainty import BALD, Entropy, LeastConfidence, Margin

__all__ = ["STRATEGIES", "SUBSAMPLE_PARAMS", "QueryStrategy", "Scores", "SelectionState", "StrategyError",
           "StrategyParamError", "make_strategy", "needs_of", "mc_passes_of", "top_k_unlabeled",
           "EMBEDDINGS", "MC_PROBS", "TOKEN_ENTROPY", "IFD", "RandomSampling", "LeastConfidence", "Margin", "Entropy", "BALD",
           "KMeansSampling", "CoreSet", "InformationDensity", "ExpectedGradientLength", "BADGE",
           "ExpectedErrorReduction", "CAL", "WeightedMixture", "TwoStage", "Adaptive", "Subsampled",
           "TokenEntropy", "IFDSampling", "Superfilter"]
