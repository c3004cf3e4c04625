import pickle

from routing.errors import DataError


class PolicyNotFoundError(DataError):
    """A subclass, as stages raise them: its type must survive pickling too."""


def test_a_data_error_crosses_a_process_boundary_whole() -> None:
    """Stage workers send dead letters back pickled: field, reason, message and type all survive."""
    for error in (DataError("xqxx.0.fwlx", "not a service"), PolicyNotFoundError("", "no policy for 3706")):
        copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, as between stage and worker
        assert (type(copy), copy.field, copy.reason, str(copy)) == (type(error), error.field, error.reason, str(error))
