"""NumPy mirrors of the C++ structs in csrc/include/gdsolve/structs.h (configs, the fit state's
scalars, an optimizer step's constants), built from the layout table the compiled core exports:
the field lists are written once, in that header, and nothing here spells them out again.

`record(name, values)` gives a one-element structured array holding the struct: the header's
defaults, overridden by `values` (a dict such as Optimizer.to_config()); the bindings copy it into
the C++ struct (or read and write the FitScalars record in place), and the GPU path passes it to
kernels by value. Callers: gdsolve.optim, gdsolve.schedules, gdsolve.engine, the estimators,
gdsolve.gpu.
"""

import functools

import numpy as np

from gdsolve import _core

__all__ = ["dtype", "record", "copy", "defaults", "fields", "as_dict", "STRUCT_NAMES"]


@functools.cache
def _layouts():
    return {name: (size, table) for name, size, table in _core.struct_layouts()}


STRUCT_NAMES = tuple(_layouts())


def _layout(name):
    try:
        return _layouts()[name]
    except KeyError:
        raise ValueError(f"unknown struct {name!r}; expected one of {STRUCT_NAMES}") from None


@functools.cache
def dtype(name):
    """The NumPy dtype with the C++ struct's exact field offsets and size."""
    size, table = _layout(name)
    names, formats, offsets = [], [], []
    for field, kind, count, offset, _ in table:
        names.append(field)
        formats.append((np.dtype(kind), (count,)) if count > 1 else np.dtype(kind))
        offsets.append(offset)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": size})


def fields(name):
    """Field names of the struct, in declaration order."""
    return tuple(f[0] for f in _layout(name)[1])


@functools.cache
def defaults(name):
    """{field: default} from the header (array fields are zeros)."""
    return {f: (0 if count > 1 else default) for f, _, count, _, default in _layout(name)[1]}


def copy(rec):
    """A copy of a record (through its bytes: ndarray.copy of a structured array with
    offsets goes field by field, 10x slower, and several records are copied per fit)."""
    return np.frombuffer(bytearray(rec.tobytes()), dtype=rec.dtype).reshape(rec.shape)


@functools.cache
def _row(name):
    """({field: position}, {array field: (count, element dtype)}, the defaults in field order,
    array fields as zeros) for record's one-row assignment."""
    dt = dtype(name)
    index = {f: i for i, f in enumerate(dt.names)}
    arrays = {f: (count, dt.fields[f][0].base) for f, _, count, _, _ in _layout(name)[1]
              if count > 1}
    template = tuple(np.zeros(*arrays[f]) if f in arrays else d
                     for f, d in defaults(name).items())
    return index, arrays, template


@functools.cache
def _default_record(name):
    """The record of the header's defaults (copied by record for a record with no values)."""
    rec = np.zeros(1, dtype=dtype(name))
    rec[0] = _row(name)[2]
    return rec


def record(name, values=None):
    """One-element structured array of struct `name`: defaults, then `values` (unknown keys are
    an error; booleans become 0/1; an array field takes a sequence, zero-padded, and sets its
    count field n_<name> unless `values` gives that too)."""
    if not values:
        return copy(_default_record(name))
    index, arrays, template = _row(name)
    row = list(template)
    for key, value in values.items():
        i = index.get(key)
        if i is None:
            raise ValueError(f"{name} has no field {key!r}; its fields are {tuple(index)}")
        if key in arrays:
            count, base = arrays[key]
            seq = np.asarray(value, dtype=base).ravel()
            if seq.shape[0] > count:
                raise ValueError(f"{name}: at most {count} {key} are supported, got "
                                 f"{seq.shape[0]}")
            padded = np.zeros(count, dtype=base)
            padded[: seq.shape[0]] = seq
            row[i] = padded
            if f"n_{key}" in index and f"n_{key}" not in values:
                row[index[f"n_{key}"]] = seq.shape[0]
        else:
            row[i] = int(bool(value)) if isinstance(value, (bool, np.bool_)) else value
    # one assignment of the whole row: field by field took 3x longer (several records a fit)
    rec = np.zeros(1, dtype=dtype(name))
    rec[0] = tuple(row)
    return rec


def as_dict(rec):
    """The record's fields as plain Python values (arrays as lists)."""
    row = rec.reshape(-1)[0]
    out = {}
    for field in rec.dtype.names:
        value = row[field]
        out[field] = value.tolist() if np.ndim(value) else value.item()
    return out
