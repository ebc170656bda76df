"""Query strategies: pure functions of the student's scores, and the registry that builds them by name.

Each module below registers its strategies (`strategies.registry.register`); importing the package
imports them all, so `make_strategy(name, params)` knows every one.
"""
from . import (contrastive, diversity, error_reduction, hybrid, ifd, model_change,  # noqa: F401
                                  random_sampling, superfilter, token_entropy, uncertainty)
from .base import (EMBEDDINGS, IFD, MC_PROBS, TOKEN_ENTROPY, QueryStrategy, Scores, SelectionState,
                                       StrategyError, StrategyParamError, mc_passes_of, needs_of, top_k_unlabeled)
from .contrastive import CAL
from .diversity import CoreSet, InformationDensity, KMeansSampling
from .error_reduction import ExpectedErrorReduction
from .hybrid import Adaptive, TwoStage, WeightedMixture
from .ifd import IFDSampling
from .model_change import BADGE, ExpectedGradientLength
from .random_sampling import RandomSampling
from .registry import STRATEGIES, SUBSAMPLE_PARAMS, make_strategy
from .shards import Shards
from .subsample import Subsampled
from .superfilter import Superfilter
from .token_entropy import TokenEntropy
from .uncertainty import BALD, Entropy, LeastConfidence, Margin

__all__ = ["STRATEGIES", "SUBSAMPLE_PARAMS", "QueryStrategy", "Scores", "SelectionState", "StrategyError",
           "StrategyParamError", "make_strategy", "needs_of", "mc_passes_of", "top_k_unlabeled",
           "EMBEDDINGS", "MC_PROBS", "TOKEN_ENTROPY", "IFD", "RandomSampling", "LeastConfidence", "Margin", "Entropy", "BALD",
           "KMeansSampling", "CoreSet", "InformationDensity", "ExpectedGradientLength", "BADGE",
           "ExpectedErrorReduction", "CAL", "WeightedMixture", "TwoStage", "Adaptive", "Subsampled", "Shards",
           "TokenEntropy", "IFDSampling", "Superfilter"]
