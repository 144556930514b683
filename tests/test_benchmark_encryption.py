"""``benchmarks.load --encryption``: the product measured with encryption on beside off.

At toy size the figures mean nothing; what is checked is that the encrypted subject really
runs encrypted, both sides are reported, and the verdict follows the target.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import encryption
from tests.helpers import PROJECT_ROOT

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


@pytest.mark.timeout(240)
@pytest.mark.usefixtures("processes")
def test_a_toy_run_reports_encryption_on_and_off(tmp_path: Path) -> None:
    report_path = tmp_path / "load.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.load",
            "--safe-runs=5",
            "--waiting-runs=6",
            "--latency-samples=2",
            "--sample-seconds=0.5",
            # The shared test machine is never quiet; the load is recorded, not waited for.
            "--max-load=1000",
            "--quiet-timeout=0",
            "--encryption",
            f"--json={report_path}",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=220,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(report_path.read_text())
    figures = report["encryption"]
    for figure, _ in encryption.COMPARED:
        assert figures[f"{figure}_off"] > 0 and figures[f"{figure}_on"] > 0, figure
    assert "payload encryption" in done.stdout
    assert "safe throughput lost to encryption" in done.stdout
    # Every result was checked by the benchmark, so the encrypted worker and the client
    # shared the key: the client cannot read a sealed result without it, nor the worker a
    # sealed input.
    roles = {process["role"] for process in report["processes"]}
    assert {"product-encrypted-worker", "product-encrypted-server"} <= roles
