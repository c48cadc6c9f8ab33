"""Keep a long-running background loop (the outbox relay, a consumer) alive across connection failures.

Invariant: the loop is restarted after every failure of the given kinds, with exponential backoff from
0.2 s doubling to at most 5 s (tenacity); cancellation is never retried, and any other error propagates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential


async def keep_running(
    work: Callable[[], Awaitable[None]],
    *,
    retry_on: tuple[type[BaseException], ...],
    on_retry: Callable[[BaseException, float], None],
) -> None:
    """Run ``work()`` until cancelled; after a ``retry_on`` error call ``on_retry(error, wait_seconds)``,
    wait, and run it again. ``work`` normally never returns; if it does, it is simply started again."""

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait_s = state.next_action.sleep if state.next_action is not None else 0.0
        if error is not None:
            on_retry(error, wait_s)

    while True:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(retry_on),
            wait=wait_exponential(multiplier=0.2, max=5),
            before_sleep=before_sleep,
            reraise=True,
        ):
            with attempt:
                await work()
