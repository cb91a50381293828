"""When an idle daemon may exit."""

from __future__ import annotations

from llmd.system.idle import Activity, IdleTracker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _quiet(requests: int = 0) -> Activity:
    return Activity(in_flight=0, requests_seen=requests, loaded_models=0, queued=0)


def test_nothing_happening_for_the_whole_timeout_means_exit() -> None:
    clock = Clock()
    idle = IdleTracker(10, clock)
    assert not idle.observe(_quiet())
    clock.now += 9
    assert not idle.observe(_quiet())
    clock.now += 1
    assert idle.observe(_quiet())


def test_a_loaded_model_a_request_in_flight_or_a_queued_request_keeps_it_running() -> None:
    for busy in (Activity(1, 0, 0, 0), Activity(0, 0, 1, 0), Activity(0, 0, 0, 1)):
        clock = Clock()
        idle = IdleTracker(10, clock)
        idle.observe(_quiet())
        clock.now += 20
        assert not idle.observe(busy)
        clock.now += 5
        assert not idle.observe(_quiet())  # the timeout restarts when it goes quiet
        clock.now += 5
        assert idle.observe(_quiet())


def test_a_request_that_came_and_went_between_looks_still_counts() -> None:
    clock = Clock()
    idle = IdleTracker(10, clock)
    idle.observe(_quiet(requests=3))
    clock.now += 10
    assert not idle.observe(_quiet(requests=4))


def test_zero_timeout_never_exits() -> None:
    clock = Clock()
    idle = IdleTracker(0, clock)
    idle.observe(_quiet())
    clock.now += 1e9
    assert not idle.observe(_quiet())
