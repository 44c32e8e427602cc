"""Unit tests for bitsd._policy: retry arithmetic, engine limits and BITS's named defaults."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitsd import _policy
from bitsd._policy import EngineConfig, RetryDecision, RetryPolicy


@pytest.mark.parametrize(
    ("given_delay", "expected"),
    [(0.0, 5.0), (1.0, 5.0), (4.999, 5.0), (-3.0, 5.0), (5.0, 5.0), (5.5, 5.5), (600.0, 600.0)],
)
def test_minimum_retry_delay_has_a_floor_of_five_seconds(
    given_delay: float, expected: float
) -> None:
    """A minimum retry delay below 5 s is raised to 5 s (SetMinimumRetryDelay); larger ones stay."""
    assert expected == RetryPolicy(minimum_retry_delay=given_delay).minimum_retry_delay


def test_default_retry_policy_is_bits_defaults() -> None:
    """A default RetryPolicy has BITS's 600 s retry delay and 14-day no-progress timeout."""
    assert RetryPolicy(600.0, 1_209_600.0) == RetryPolicy()


def test_negative_no_progress_timeout_is_rejected() -> None:
    """A negative no-progress timeout is a ValueError."""
    with pytest.raises(ValueError, match="no_progress_timeout"):
        RetryPolicy(no_progress_timeout=-1.0)


def test_zero_no_progress_timeout_makes_every_error_fatal() -> None:
    """NoProgressTimeout 0 means no retry: the first transient error is fatal."""
    policy = RetryPolicy(minimum_retry_delay=5.0, no_progress_timeout=0.0)
    assert RetryDecision(fatal=True) == policy.after_transient(now=100.0, no_progress_since=100.0)


def test_retry_delay_longer_than_timeout_is_fatal() -> None:
    """MinimumRetryDelay > NoProgressTimeout means BITS does not retry (ERROR at once)."""
    policy = RetryPolicy(minimum_retry_delay=61.0, no_progress_timeout=60.0)
    assert RetryDecision(fatal=True) == policy.after_transient(now=100.0, no_progress_since=100.0)


def test_floor_applies_before_comparing_with_the_timeout() -> None:
    """A 1 s delay is raised to 5 s, which is longer than a 3 s timeout: fatal."""
    policy = RetryPolicy(minimum_retry_delay=1.0, no_progress_timeout=3.0)
    assert policy.after_transient(now=100.0, no_progress_since=100.0) == RetryDecision(fatal=True)


def test_retry_delay_equal_to_timeout_still_retries() -> None:
    """A retry delay equal to the timeout is not longer than it: the job is retried."""
    policy = RetryPolicy(minimum_retry_delay=60.0, no_progress_timeout=60.0)
    expected = RetryDecision(fatal=False, retry_at=160.0, deadline=160.0)
    assert expected == policy.after_transient(now=100.0, no_progress_since=100.0)


@pytest.mark.parametrize(
    ("retry_after", "expected_retry_at"),
    [
        (None, 1030.0),  # no Retry-After: the minimum delay
        (0.0, 1030.0),  # shorter than the delay: the delay wins
        (10.0, 1030.0),
        (30.0, 1030.0),
        (45.5, 1045.5),  # longer: the server's wish wins
        (500.0, 1500.0),
    ],
)
def test_retry_at_is_now_plus_the_longer_of_delay_and_retry_after(
    retry_after: float | None, expected_retry_at: float
) -> None:
    """retry_at = now + max(minimum_retry_delay, retry_after)."""
    policy = RetryPolicy(minimum_retry_delay=30.0, no_progress_timeout=3600.0)
    decision = policy.after_transient(now=1000.0, no_progress_since=900.0, retry_after=retry_after)
    assert RetryDecision(fatal=False, retry_at=expected_retry_at, deadline=4500.0) == decision


def test_deadline_is_since_plus_timeout() -> None:
    """The no-progress deadline counts from the start of the timer, not from now."""
    policy = RetryPolicy(minimum_retry_delay=10.0, no_progress_timeout=100.0)
    decision = policy.after_transient(now=150.0, no_progress_since=120.0)
    assert decision.deadline == 220.0
    assert decision.retry_at == 160.0
    assert decision.fatal is False


@pytest.mark.parametrize("now", [220.0, 220.5, 1e9])
def test_now_at_or_after_deadline_is_fatal(now: float) -> None:
    """Once now >= no_progress_since + timeout the job goes to ERROR."""
    policy = RetryPolicy(minimum_retry_delay=10.0, no_progress_timeout=100.0)
    expected = RetryDecision(fatal=True, deadline=220.0)
    assert expected == policy.after_transient(now=now, no_progress_since=120.0)


def test_just_before_deadline_is_retried() -> None:
    """A transient error just before the deadline is still retried."""
    policy = RetryPolicy(minimum_retry_delay=10.0, no_progress_timeout=100.0)
    decision = policy.after_transient(now=219.9, no_progress_since=120.0)
    assert decision.fatal is False


def test_policies_are_frozen() -> None:
    """RetryPolicy, RetryDecision and EngineConfig cannot be changed in place."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        RetryPolicy().minimum_retry_delay = 1.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        RetryDecision(fatal=True).fatal = False  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        EngineConfig().time_slice = 1.0  # type: ignore[misc]


@settings(max_examples=200, deadline=None)
@given(
    delay=st.floats(min_value=0.0, max_value=1e7, allow_nan=False),
    timeout=st.floats(min_value=0.0, max_value=1e8, allow_nan=False),
    since=st.floats(min_value=0.0, max_value=1e8, allow_nan=False),
    elapsed=st.floats(min_value=0.0, max_value=1e8, allow_nan=False),
    retry_after=st.none() | st.floats(min_value=0.0, max_value=86_400.0, allow_nan=False),
)
def test_retry_at_is_in_the_future_whenever_not_fatal(
    delay: float, timeout: float, since: float, elapsed: float, retry_after: float | None
) -> None:
    """Whenever the decision is not fatal, retry_at > now and now < deadline."""
    policy = RetryPolicy(minimum_retry_delay=delay, no_progress_timeout=timeout)
    now = since + elapsed
    decision = policy.after_transient(now=now, no_progress_since=since, retry_after=retry_after)
    if not decision.fatal:
        assert decision.retry_at is not None
        assert decision.deadline is not None
        assert decision.retry_at > now
        assert decision.retry_at >= now + policy.minimum_retry_delay
        assert now < decision.deadline
    else:
        assert decision.retry_at is None


ENGINE_POSITIVE_FIELDS = [
    "max_background_jobs",
    "time_slice",
    "max_notifications",
    "checkpoint_bytes",
    "checkpoint_seconds",
    "connect_timeout",
    "read_timeout",
    "chunk_size",
    "job_inactivity_timeout",
]


@pytest.mark.parametrize("field", ENGINE_POSITIVE_FIELDS)
@pytest.mark.parametrize("value", [0, -1])
def test_engine_config_rejects_non_positive_values(field: str, value: int) -> None:
    """EngineConfig refuses zero or negative limits, timeouts and sizes with ValueError."""
    settings: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=field):
        EngineConfig(**settings)


def test_engine_config_rejects_negative_notify_retry_interval() -> None:
    """A negative notification retry interval is refused (it would retry a failing callback
    in a tight loop); None, meaning "the job's minimum retry delay", is the default."""
    assert EngineConfig().notify_retry_interval is None
    assert EngineConfig(notify_retry_interval=30.0).notify_retry_interval == 30.0
    with pytest.raises(ValueError, match="notify_retry_interval"):
        EngineConfig(notify_retry_interval=-1.0)


def test_engine_config_rejects_negative_default_no_progress_timeout() -> None:
    """A negative default no-progress timeout is refused; 0 (every error fatal) is allowed."""
    with pytest.raises(ValueError, match="default_no_progress_timeout"):
        EngineConfig(default_no_progress_timeout=-1.0)
    assert EngineConfig(default_no_progress_timeout=0.0).default_no_progress_timeout == 0.0


def test_engine_config_defaults_are_the_named_constants() -> None:
    """A default EngineConfig uses the named DEFAULT_* constants."""
    config = EngineConfig()
    expected = (
        _policy.DEFAULT_MAX_BACKGROUND_JOBS,
        _policy.DEFAULT_TIME_SLICE,
        _policy.DEFAULT_JOB_INACTIVITY_TIMEOUT,
        _policy.DEFAULT_MINIMUM_RETRY_DELAY,
        _policy.DEFAULT_NO_PROGRESS_TIMEOUT,
        _policy.DEFAULT_MAX_NOTIFICATIONS,
    )
    actual = (
        config.max_background_jobs,
        config.time_slice,
        config.job_inactivity_timeout,
        config.default_minimum_retry_delay,
        config.default_no_progress_timeout,
        config.max_notifications,
    )
    assert expected == actual


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("DEFAULT_MINIMUM_RETRY_DELAY", 600),  # SetMinimumRetryDelay
        ("MINIMUM_RETRY_DELAY_FLOOR", 5),  # SetMinimumRetryDelay
        ("DEFAULT_NO_PROGRESS_TIMEOUT", 1_209_600),  # SetNoProgressTimeout, 14 days
        ("DEFAULT_MAX_DOWNLOAD_TIME", 7_776_000),  # SetMaximumDownloadTime, 90 days
        ("DEFAULT_JOB_INACTIVITY_TIMEOUT", 7_776_000),  # JobInactivityTimeout policy, 90 days
        ("DEFAULT_MAX_NOTIFICATIONS", 4),  # four simultaneous notifications per user
        ("MAX_URL_LENGTH", 2200),  # BG_FILE_INFO
        ("MAX_DESCRIPTION_LENGTH", 1024),  # Start-BitsTransfer -Description
        ("MAX_NOTIFY_PARAMETERS_LENGTH", 4000),  # SetNotifyCmdLine
    ],
)
def test_named_defaults_equal_bits(name: str, expected: int) -> None:
    """The named defaults and limits equal the values BITS documents (inventory §2.13)."""
    assert expected == getattr(_policy, name)
