"""The integer codes shared by C++ (csrc/include/gdsolve/codes.h) and Python (gdsolve/_codes.py).

gdsolve._core.codes() returns the compiled table; every enum in gdsolve._codes must match it exactly
(same kinds, names and values, in both directions), or configs would select the wrong rule.
"""

from collections import defaultdict

import pytest

from gdsolve import _codes, _core


def compiled_codes():
    table = defaultdict(dict)
    for kind, name, value in _core.codes():
        assert name not in table[kind], f"{kind}.{name} defined twice in codes.h"
        table[kind][name] = value
    return dict(table)


def python_codes():
    return {enum.__name__: {m.name: int(m.value) for m in enum} for enum in _codes.ALL_CODE_ENUMS}


def test_same_kinds():
    assert set(compiled_codes()) == set(python_codes())


@pytest.mark.parametrize("kind", sorted(python_codes()))
def test_python_enum_matches_codes_h(kind):
    compiled = compiled_codes()[kind]
    python = python_codes()[kind]
    for name, value in python.items():  # Python -> C++
        assert compiled.get(name) == value, f"{kind}.{name}: C++ has {compiled.get(name)}"
    for name, value in compiled.items():  # C++ -> Python
        assert python.get(name) == value, f"{kind}.{name}: Python has {python.get(name)}"


@pytest.mark.parametrize("kind", sorted(python_codes()))
def test_values_unique_within_kind(kind):
    # An IntEnum silently aliases repeated values; codes.h must not repeat one either.
    values = list(compiled_codes()[kind].values())
    assert len(values) == len(set(values))
    assert len(getattr(_codes, kind).__members__) == len(values)


def test_all_code_enums_lists_every_enum_module_member():
    from enum import IntEnum

    declared = {
        obj for obj in vars(_codes).values()
        if isinstance(obj, type) and issubclass(obj, IntEnum) and obj is not IntEnum
    }
    assert declared == set(_codes.ALL_CODE_ENUMS)
