"""A precompute job's error names its input, also when the error itself names no file (the
trigger-file defect surfaced as 'decode: events buffer holds 0 slots' with no file name)."""

from evstream.errors import ArgumentError, FileFormatError
from evstream.utils.parallel import _run_job


def failing(error):
    def job(_job, _report):
        raise error
    return job


def test_error_without_a_file_gets_the_input_path():
    status, message = _run_job(failing(ArgumentError("events buffer holds 0 slots")),
                               {"path": "/data/rec.raw"}, None)
    assert status == "error" and message == "/data/rec.raw: events buffer holds 0 slots"


def test_error_naming_a_file_is_kept_as_it_is():
    status, message = _run_job(failing(FileFormatError("truncated", "/data/rec_bbox.npy")),
                               {"path": "/data/rec.raw"}, None)
    assert message == "/data/rec_bbox.npy: truncated"
