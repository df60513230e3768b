"""The service time: one estimate for admission, deadlines and statistics, learnt off the loop."""

from __future__ import annotations

import time

import pytest

from loopsafe import HashPool
from loopsafe._service import ServiceTime, check_cost

pytestmark = pytest.mark.anyio


async def test_statistics_report_the_estimate_admission_uses():
    """mean_service_time is the smoothed estimate (not a lifetime mean); the total is kept too."""
    async with HashPool(1) as pool:
        await pool.run(time.sleep, 0.1)
        await pool.run(int)
        stats = pool.statistics()
        estimate = pool._service.estimate()  # what admission reads
    assert stats.mean_service_time == estimate
    # t then ~0: the smoothed figure moves a fifth of the way (~0.8 t); a
    # lifetime mean would say ~0.5 t. Read against the measured total, so a
    # late wake-up on a busy machine moves both alike.
    assert stats.mean_service_time is not None
    assert stats.service_seconds >= 0.1
    assert 0.75 < stats.mean_service_time / stats.service_seconds < 0.85


def test_a_cold_estimate_comes_from_a_declared_cost():
    """Cold: no estimate until a cost is declared; seconds are taken at once."""
    service = ServiceTime(None)
    assert service.estimate() is None
    assert service.estimate(0.3) == 0.3
    assert service.estimate() == 0.3
    assert service.worst() == 0.3


def test_an_estimator_is_run_once_and_makes_the_estimate_known():
    """A callable cost is handed to one worker, once; its answer becomes the prior."""
    service = ServiceTime(None)
    calls: list[int] = []

    def estimator() -> float:
        calls.append(1)
        return 0.25

    assert service.estimate(estimator) is None
    taken = service.take_estimator()
    assert taken is estimator
    assert service.take_estimator() is None  # never handed out twice
    assert service.measure(taken) is True
    assert service.estimate(estimator) == 0.25
    assert service.take_estimator() is None
    assert calls == [1]


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(None, id="too-cheap-to-matter"),
        pytest.param(float("nan"), id="nan"),
        pytest.param(RuntimeError("broken"), id="raises"),
    ],
)
def test_an_estimator_without_a_usable_answer_leaves_the_pool_cold(answer):
    """An estimator that answers None, nonsense or raises teaches nothing."""
    service = ServiceTime(None)

    def estimator() -> float | None:
        if isinstance(answer, Exception):
            raise answer
        return answer

    service.estimate(estimator)
    taken = service.take_estimator()
    assert taken is not None
    assert service.measure(taken) is False
    assert service.estimate() is None


def test_the_first_answer_makes_a_cold_estimate_known_once():
    """record() says True only for the sample that ends the cold phase."""
    service = ServiceTime(None)
    assert service.record(0.2) is True
    assert service.record(0.2) is False
    warm = ServiceTime(None)
    warm.estimate(0.1)  # a declared cost: already known
    assert warm.record(0.2) is False


@pytest.mark.parametrize(
    ("cost", "error"),
    [
        pytest.param(0, ValueError, id="zero"),
        pytest.param(float("inf"), ValueError, id="infinite"),
        pytest.param("1", TypeError, id="string"),
        pytest.param(True, TypeError, id="bool"),
    ],
)
def test_a_bad_cost_is_refused(cost, error):
    """cost= is seconds (positive, finite), a callable, or None."""
    with pytest.raises(error):
        check_cost(cost)
    check_cost(None)
    check_cost(0.5)
    check_cost(lambda: 0.5)
