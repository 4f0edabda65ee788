"""scikit-learn's own estimator checks on SGDLinearRegression and SGDLogistic, in the three
training regimes (per-sample SGD, mini-batch Adam, full-batch descent) plus one-vs-rest averaged
SGD and mini-batch Sophia (GNB and exact). The only allowed failures are the
sample-weight-equivalence checks that scikit-learn itself expects SGD estimators to fail (weights
scale the per-sample steps; the objective is a mean over n).
"""

import pytest
from sklearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    parametrize_with_checks,
)

from gdsolve import SGDLinearRegression, SGDLogistic
from gdsolve.optim import Sophia

ESTIMATORS = [
    SGDLogistic(random_state=0),
    SGDLogistic(optimizer="adam", batch_size=16, random_state=0),
    SGDLogistic(batch_size="full", random_state=0),
    SGDLogistic(multi_class="ovr", average=True, random_state=0),
    SGDLinearRegression(random_state=0),
    SGDLinearRegression(optimizer="adam", batch_size=16, random_state=0),
    SGDLinearRegression(batch_size="full", random_state=0),
    SGDLogistic(optimizer="sophia", batch_size=16, random_state=0),
    SGDLinearRegression(optimizer=Sophia(lr=1e-2, estimator="exact"), batch_size=16,
                        random_state=0),
]

SGD_XFAIL = {
    "check_sample_weight_equivalence_on_dense_data":
        "SGD: sample weights scale steps; repeated rows change n (scikit-learn expects this too)",
    "check_sample_weight_equivalence_on_sparse_data":
        "SGD: sample weights scale steps; repeated rows change n (scikit-learn expects this too)",
}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: SGD_XFAIL)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", [SGDLogistic(random_state=0),
                                       SGDLinearRegression(random_state=0)],
                         ids=["SGDLogistic", "SGDLinearRegression"])
def test_dataframe_column_names_consistency(estimator):
    pytest.importorskip("pandas")
    check_dataframe_column_names_consistency(type(estimator).__name__, estimator)
