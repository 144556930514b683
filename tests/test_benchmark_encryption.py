"""``benchmarks.load --encryption``: the product measured with encryption on beside off.

What is checked here is the verdict; that the encrypted subject really runs encrypted and
both sides are reported is checked on the smoke test's toy run (test_benchmark_smoke.py).
"""

import pytest

from benchmarks import encryption

PLAIN = {
    "safe_runs_per_s": 100.0,
    "safe_latency_p50_ms": 50.0,
    "safe_worker_cpu_ms_per_run": 20.0,
    "approval_latency_p50_ms": 30.0,
}


@pytest.mark.parametrize(("throughput", "met"), [(91.0, True), (90.0, True), (89.0, False)])
def test_the_target_is_ten_percent_of_safe_throughput(throughput: float, met: bool) -> None:
    encrypted = {**PLAIN, "safe_runs_per_s": throughput, "safe_worker_cpu_ms_per_run": 23.0}
    figures = encryption.compare(PLAIN, encrypted)
    assert figures["safe_throughput_loss_percent"] == pytest.approx(100.0 - throughput)
    assert figures["worker_cpu_ms_per_run_added"] == pytest.approx(3.0)
    assert figures["target_met"] is met
    assert ("met" if met else "MISSED") in encryption.table(figures)


def test_only_the_encrypted_subject_gets_a_key() -> None:
    assert encryption.worker_settings(encryption.PRODUCT) == {}
    assert encryption.client_converter(encryption.PRODUCT).payload_codec is None
    codec = encryption.client_converter(encryption.ENCRYPTED_PRODUCT).payload_codec
    assert codec is not None and codec.encrypts  # type: ignore[attr-defined]
