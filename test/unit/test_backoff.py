"""Restart backoff (rt2_ros.backoff): grows, caps, resets after a healthy run, refuses bad settings."""

import random

import pytest

from rt2_ros.backoff import Backoff


def test_delays_double_up_to_the_cap_without_jitter():
    b = Backoff(0.5, 3.0, jitter=0.0)
    assert [b.failed(0.0) for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert b.failures == 5


def test_a_healthy_run_resets_the_delay_a_short_one_does_not():
    b = Backoff(0.5, 10.0, jitter=0.0, healthy_after_s=30.0)
    b.failed(0.0), b.failed(1.0)
    b.started(2.0)
    assert b.failed(5.0) == 2.0  # up 3 s only: still backing off
    b.started(10.0)
    assert b.failed(45.0) == 0.5  # up 35 s: counts as healthy


def test_jitter_stays_within_its_band():
    b = Backoff(1.0, 1.0, jitter=0.2, rng=random.Random(1))
    delays = [b.failed(0.0) for _ in range(200)]
    assert min(delays) >= 0.8 and max(delays) <= 1.2 and len(set(delays)) > 100


@pytest.mark.parametrize(
    "kwargs",
    [dict(initial_s=0), dict(initial_s=2, max_s=1), dict(factor=0.5), dict(jitter=1.0), dict(healthy_after_s=-1)],
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        Backoff(**kwargs)
