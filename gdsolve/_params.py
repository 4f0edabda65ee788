"""ParamNamesOnceMixin: scikit-learn's get_params, set_params and clone read a class's
constructor parameters with inspect.signature on every call (about 20 us each, several per fit:
the fixed cost that dominated fits of small data); the names are a fact of the class, so they are
read once per class here. Used by the estimators, gdsolve.optim and gdsolve.schedules."""

__all__ = ["ParamNamesOnceMixin"]


class ParamNamesOnceMixin:
    """Put before BaseEstimator: _get_param_names memoised per class (not inherited, as a
    subclass may add parameters)."""

    @classmethod
    def _get_param_names(cls):
        names = cls.__dict__.get("_param_names_once")
        if names is None:
            names = tuple(super()._get_param_names())
            cls._param_names_once = names
        return list(names)
