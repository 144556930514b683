"""What payload encryption costs: the product measured again with it on, in the same run.

``python -m benchmarks.load --encryption`` measures a third subject, the product with a
fresh key in its worker and in the benchmark's client, right after the unencrypted product,
on a dev server of its own. The report puts the two side by side: safe throughput, the
latency of a safe run, and the worker's CPU per safe run. Target: encryption costs at most
10 % of the safe throughput.
"""

import base64
import dataclasses
import os

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from benchmarks.subjects import PRODUCT, Subject
from client.connection import converter_with_keys
from constants import ENCRYPTION_KEYS_ENV
from encryption.keys import parse_keys

ENCRYPTED_PRODUCT = dataclasses.replace(PRODUCT, name="product-encrypted")
MAX_THROUGHPUT_LOSS_PERCENT = 10.0
# A key made for this benchmark process only, shared by its worker and its client.
BENCH_KEYS = f"bench:{base64.b64encode(os.urandom(32)).decode()}"
COMPARED = (
    ("safe_runs_per_s", "safe throughput, runs/s"),
    ("safe_latency_p50_ms", "safe start-to-result p50, ms"),
    ("safe_worker_cpu_ms_per_run", "worker CPU per safe run, ms"),
    ("approval_latency_p50_ms", "approval latency p50, ms"),
)


def worker_settings(subject: Subject) -> dict[str, str]:
    """What the subject's worker needs on top of the usual environment."""
    return {ENCRYPTION_KEYS_ENV: BENCH_KEYS} if subject is ENCRYPTED_PRODUCT else {}


def client_converter(subject: Subject) -> DataConverter:
    """The benchmark's client converter: the plain one, or with the worker's key."""
    if subject is not ENCRYPTED_PRODUCT:
        return pydantic_data_converter
    return converter_with_keys(parse_keys([BENCH_KEYS], source="benchmark"))


def compare(plain: dict[str, float], encrypted: dict[str, float]) -> dict[str, float | bool]:
    """Each compared figure with encryption off and on, and the verdict on the target."""
    figures: dict[str, float | bool] = {}
    for figure, _ in COMPARED:
        figures[f"{figure}_off"] = plain[figure]
        figures[f"{figure}_on"] = encrypted[figure]
    loss = 100.0 * (1 - encrypted["safe_runs_per_s"] / plain["safe_runs_per_s"])
    figures["safe_throughput_loss_percent"] = loss
    figures["worker_cpu_ms_per_run_added"] = (
        encrypted["safe_worker_cpu_ms_per_run"] - plain["safe_worker_cpu_ms_per_run"]
    )
    figures["target_met"] = loss <= MAX_THROUGHPUT_LOSS_PERCENT
    return figures


def table(figures: dict[str, float | bool]) -> str:
    rows = [f"{'payload encryption':34} {'off':>10} {'on':>10}"]
    for figure, label in COMPARED:
        rows.append(
            f"{label:34} {figures[f'{figure}_off']:>10.1f} {figures[f'{figure}_on']:>10.1f}"
        )
    verdict = "met" if figures["target_met"] else "MISSED"
    rows.append(
        f"safe throughput lost to encryption: {figures['safe_throughput_loss_percent']:.1f} % "
        f"(target <= {MAX_THROUGHPUT_LOSS_PERCENT:g} %: {verdict}); worker CPU added per run: "
        f"{figures['worker_cpu_ms_per_run_added']:.1f} ms"
    )
    return "\n".join(rows)
