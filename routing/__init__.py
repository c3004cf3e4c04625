"""Pure domain logic: mapping, validation, routing rules, task building, SLA arithmetic.

Everything here is a plain function over plain data (the TypedDicts of :mod:`routing.records`); nothing
here performs I/O or imports :mod:`connectors`.
"""
