"""Exit-code table and fetchmail's multi-query aggregation rule."""

import pytest

from pyfetchmail import errors
from pyfetchmail.exitcodes import ExitCode, aggregate, query_status_name


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], 1),
        ([1], 1),
        ([2, 0, 3], 0),
        ([2, 3], 3),
        ([3, 2], 2),
        ([13], 13),
    ],
)
def test_aggregate_any_success_else_last(statuses: list[int], expected: int) -> None:
    assert aggregate(statuses) == expected


def test_query_status_names_as_fetchmail_prints_them() -> None:
    assert query_status_name(2) == "2 (SOCKET)"
    assert query_status_name(13) == "13 (MAXFETCH)"
    assert query_status_name(14) == "14"


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.ConfigError, 5),
        (errors.RcPermissionError, 6),
        (errors.SocketError, 2),
        (errors.AuthError, 3),
        (errors.RemoteProtocolError, 4),
        (errors.ServerError, 7),
        (errors.LockError, 8),
        (errors.ServerLockBusy, 9),
        (errors.SmtpConnectError, 10),
        (errors.DNSError, 11),
        (errors.BsmtpError, 12),
        (errors.FetchLimitReached, 13),
        (errors.ServerBusy, 14),
    ],
)
def test_each_error_carries_fetchmail_exit_code(
    exc: type[errors.FetchmailError], code: int
) -> None:
    assert exc.exit_code == ExitCode(code)
