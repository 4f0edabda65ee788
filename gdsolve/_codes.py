"""Python mirror of csrc/include/gdsolve/codes.h (tests/test_codes.py proves they agree)."""

from enum import IntEnum


class Loss(IntEnum):
    SQUARED = 0
    HUBER = 1
    EPSILON_INSENSITIVE = 2
    LOG = 3
    SOFTMAX = 4


class Activation(IntEnum):
    IDENTITY = 0
    RELU = 1
    TANH = 2
    LOGISTIC = 3


class Penalty(IntEnum):
    NONE = 0
    L2 = 1
    L1 = 2
    ELASTICNET = 3


class Optimizer(IntEnum):
    SGD = 0
    ADAGRAD = 1
    RMSPROP = 2
    ADAM = 3
    ADAMW = 4
    NADAM = 5
    RADAM = 6
    LION = 7
    MUON = 8
    SOPHIA = 9


class MuonAdjustLr(IntEnum):
    ORIGINAL = 0
    MATCH_RMS_ADAMW = 1


class HessianEstimator(IntEnum):
    GNB = 0
    EXACT = 1


class Schedule(IntEnum):
    CONSTANT = 0
    OPTIMAL = 1
    INVSCALING = 2
    ADAPTIVE = 3
    STEP = 4
    MULTISTEP = 5
    EXPONENTIAL = 6
    COSINE = 7
    COSINE_WARM_RESTARTS = 8
    ONE_CYCLE = 9
    CYCLIC = 10
    REDUCE_ON_PLATEAU = 11


class CyclicMode(IntEnum):
    TRIANGULAR = 0
    TRIANGULAR2 = 1
    EXP_RANGE = 2


class Anneal(IntEnum):
    COS = 0
    LINEAR = 1


class Clip(IntEnum):
    NONE = 0
    VALUE = 1
    NORM = 2


class PlateauMode(IntEnum):
    NONE = 0
    ADAPTIVE = 1
    REDUCE_ON_PLATEAU = 2


class FitStatus(IntEnum):
    MAX_ITER = 0
    CONVERGED = 1
    DIVERGED = 2
    INTERRUPTED = 3


ALL_CODE_ENUMS = (Loss, Activation, Penalty, Optimizer, MuonAdjustLr, HessianEstimator, Schedule,
                  CyclicMode, Anneal, Clip, PlateauMode, FitStatus)
