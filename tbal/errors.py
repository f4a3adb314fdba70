"""Errors the library raises for bad input; the command turns them into one line and exit code 2."""


class TBALInputError(ValueError):
    """Input data or arguments that do not fit: the message names the problem and what was expected."""


class DataError(TBALInputError):
    """A data set file or array that does not fit (missing keys, wrong shapes, NaN, labels out of range)."""
