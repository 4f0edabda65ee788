"""The best-constant start of a distributed fit (intercept_start): the shards' statistics of
their training rows (_worker.start_stats) combined on the client into the exact optimum of the
intercept-only model, gdsolve._intercept.best_constant, fed the combined sums as a few weighted
points (the same optimum, up to the order of the sums). Called by linear.py and mlp.py for a
fresh fit and the first partial_fit call.
"""

import numpy as np

from gdsolve._codes import Loss
from gdsolve._intercept import best_constant
from gdsolve.distributed import _worker


def _log_odds(positive, negative):
    """best_constant of the log loss from the weights of the positives and the negatives."""
    return best_constant(Loss.LOG, [1.0, -1.0], [positive, negative])


def _from_counts(loss, counts, n_loops, n_outputs):
    """Linear classifiers / MLP softmax: the start from the weighted class counts."""
    if loss == Loss.SOFTMAX:
        return best_constant(Loss.SOFTMAX, np.arange(n_outputs), counts, n_outputs=n_outputs)
    if n_loops == 1:  # binary: class 1 is the positive one
        return _log_odds(counts[1], counts[0])
    return np.concatenate([_log_odds(counts[k], np.delete(counts, k).sum())
                           for k in range(n_loops)])


def linear_start(est, data, spec, loss, n_loops, n_outputs):
    """Intercepts of the fresh states (n_loops * n_outputs,), or None for the zero start."""
    if not est._starts_from_best_constant():
        return None
    parts = data.run(_worker.start_stats, spec, name="start")
    if spec.classes is not None:
        return _from_counts(loss, np.sum(parts, axis=0), n_loops, n_outputs)
    if loss == Loss.SQUARED:
        total = sum(p[0] for p in parts)
        weighted_sum = sum(p[1] for p in parts)
        mean = weighted_sum / total if total > 0 else 0.0
        return best_constant(Loss.SQUARED, [mean], [total])
    y = np.concatenate([p[0] for p in parts])  # Huber, epsilon-insensitive: the targets
    s = None if all(p[1] is None for p in parts) else np.concatenate(
        [np.ones(p[0].shape[0]) if p[1] is None else p[1] for p in parts])
    return best_constant(loss, y, s, epsilon=float(est.epsilon))


def mlp_output_bias(data, spec, loss, n_outputs):
    """The output layer's bias at the best constant of the training rows over all shards."""
    parts = data.run(_worker.start_stats, spec, name="start")
    if loss == Loss.SOFTMAX:
        return _from_counts(loss, np.sum(parts, axis=0), 1, n_outputs)
    rows = sum(p[0] for p in parts)
    sums = np.sum([p[1] for p in parts], axis=0)
    if loss == Loss.LOG:  # one logistic output per column: its positives and negatives
        return np.concatenate([_log_odds(sums[j], rows - sums[j]) for j in range(n_outputs)])
    mean = sums / rows if rows > 0 else np.zeros(n_outputs)
    return best_constant(Loss.SQUARED, mean[None, :], [rows], n_outputs=n_outputs)
