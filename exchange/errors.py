"""The typed errors of the simulated exchange: each is one gRPC status code (and, for
FAILED_PRECONDITION, a machine-readable reason sent in the trailing metadata).

    ExchangeServiceError
    ├── InvalidRequestError        INVALID_ARGUMENT
    ├── RegionNotReplayedError     NOT_FOUND
    ├── BidNotFoundError           NOT_FOUND
    ├── BidIdConflictError         ALREADY_EXISTS
    ├── PriceNotInHistoryError     FAILED_PRECONDITION  price_not_in_history
    ├── IntervalNotEndedError      FAILED_PRECONDITION  interval_not_ended
    ├── BidSupersededError         FAILED_PRECONDITION  superseded
    ├── ClockNotAdvanceableError   FAILED_PRECONDITION  live_clock
    └── ExchangeStorageError       UNAVAILABLE (the database failed a write; retry)
    (market_adapters.violations.BidValidationError  INVALID_ARGUMENT, violations in trailing metadata)
"""

from __future__ import annotations

from typing import Any

import grpc


class ExchangeServiceError(Exception):
    """Base of the errors the exchange core raises; each subclass is one gRPC status code."""

    code: Any = grpc.StatusCode.INTERNAL
    reason: str | None = None


class InvalidRequestError(ExchangeServiceError, ValueError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class RegionNotReplayedError(ExchangeServiceError, LookupError):
    code = grpc.StatusCode.NOT_FOUND


class BidNotFoundError(ExchangeServiceError, LookupError):
    code = grpc.StatusCode.NOT_FOUND


class BidIdConflictError(ExchangeServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PriceNotInHistoryError(ExchangeServiceError, LookupError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "price_not_in_history"


class IntervalNotEndedError(ExchangeServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "interval_not_ended"


class BidSupersededError(ExchangeServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "superseded"

    def __init__(self, message: str, superseded_by: str) -> None:
        super().__init__(message)
        self.superseded_by = superseded_by


class ExchangeStorageError(ExchangeServiceError):
    """The exchange database failed a write; the submission was not kept and may be retried."""

    code = grpc.StatusCode.UNAVAILABLE


class ClockNotAdvanceableError(ExchangeServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "live_clock"


__all__ = [
    "BidIdConflictError",
    "BidNotFoundError",
    "BidSupersededError",
    "ClockNotAdvanceableError",
    "ExchangeServiceError",
    "ExchangeStorageError",
    "IntervalNotEndedError",
    "InvalidRequestError",
    "PriceNotInHistoryError",
    "RegionNotReplayedError",
]
