"""gdsolve: gradient-descent solvers with compiled loops behind scikit-learn estimators."""

import os

__version__ = "0.1.0"


def get_include():
    """Folder holding the C++ core headers (``#include "gdsolve/optimizers.h"`` etc.).

    In an installed wheel they ship as ``gdsolve/include``; in an editable install from a source
    checkout they are read from ``csrc/include``.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    installed = os.path.join(here, "include")
    if os.path.isfile(os.path.join(installed, "gdsolve", "config.h")):
        return installed
    source = os.path.join(os.path.dirname(here), "csrc", "include")
    if os.path.isfile(os.path.join(source, "gdsolve", "config.h")):
        return source
    raise RuntimeError("gdsolve's C++ headers were not found next to the package")


__all__ = ["get_include", "__version__"]

# Estimators (imported last: they import gdsolve for __version__).
from gdsolve.linear_model import SGDLinearRegression, SGDLogistic  # noqa: E402

__all__ += ["SGDLinearRegression", "SGDLogistic"]

from gdsolve.neural_network import SGDMLPClassifier, SGDMLPRegressor  # noqa: E402

__all__ += ["SGDMLPClassifier", "SGDMLPRegressor"]

# Learning-rate range test (gdsolve.lr_finder), usable with every estimator.
from gdsolve.lr_finder import lr_find  # noqa: E402

__all__ += ["lr_find"]
