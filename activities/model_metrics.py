"""How the model behaves, measured where it is called: each call's latency and result.

``activity.metric_meter()`` tags every value with the activity type and task queue. Every
activity attempt makes one call, so ``hitl_model_call_attempts`` counts attempts; retries
show as ``result="error"``.
"""

import time
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

from temporalio import activity

MODEL_CALL_ATTEMPTS = "hitl_model_call_attempts"
MODEL_CALL_LATENCY = "hitl_model_call_latency"

T = TypeVar("T")


async def measured_model_call(call: Awaitable[T]) -> T:
    """Await the model call, recording how long it took and whether it answered."""
    started = time.monotonic()
    result = "error"
    try:
        answer = await call
        result = "ok"
        return answer
    finally:
        meter = activity.metric_meter()
        attributes = {"result": result}
        meter.create_counter(MODEL_CALL_ATTEMPTS, "Model calls, one per attempt").add(1, attributes)
        meter.create_histogram_timedelta(
            MODEL_CALL_LATENCY, "Time the model took to answer (or fail)", unit="duration"
        ).record(timedelta(seconds=time.monotonic() - started), attributes)
