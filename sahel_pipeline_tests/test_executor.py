"""The code location's executor: in-process unless the deployment names a Celery broker, read when a run starts."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster_celery.executor import CeleryExecutor

from sahel_pipeline.definitions import defs
from sahel_pipeline.defs.executor import CELERY_BACKEND_VARIABLE, CELERY_BROKER_VARIABLE, pipeline_executor
from sahel_pipeline_tests.fixtures import code_location_job

RETRIES = {"retries": {"enabled": {}}}


@pytest.fixture(scope="module")
def instance() -> dg.DagsterInstance:
    """An in-memory instance for the module: creating an executor reads the instance and changes nothing in it (one on
    disk, with its storage created, costs 1.5 s of CPU)."""
    return dg.DagsterInstance.ephemeral()


def executor_for_a_run(instance: dg.DagsterInstance, config=RETRIES) -> dg.Executor:
    context = dg.InitExecutorContext(
        job=code_location_job("weekly_escalation_job"),
        executor_def=pipeline_executor,
        executor_config=config,
        instance=instance,
    )
    return pipeline_executor.executor_creation_fn(context)  # type: ignore[misc]


def test_the_code_location_runs_in_process_without_a_broker(monkeypatch, instance):
    monkeypatch.delenv(CELERY_BROKER_VARIABLE, raising=False)
    assert defs.resolve_job_def("weekly_escalation_job").executor_def is pipeline_executor
    executor = executor_for_a_run(instance)
    assert type(executor).__name__ == "InProcessExecutor"
    assert pipeline_executor.get_requirements({}) == []


@pytest.mark.parametrize("backend", [None, "redis://results.internal:6379/1"])
def test_a_broker_in_the_environment_sends_steps_to_celery(monkeypatch, instance, backend):
    broker = "redis://broker.internal:6379/0"
    monkeypatch.setenv(CELERY_BROKER_VARIABLE, broker)
    if backend is None:
        monkeypatch.delenv(CELERY_BACKEND_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(CELERY_BACKEND_VARIABLE, backend)
    executor = executor_for_a_run(instance, {"retries": {"disabled": {}}})
    assert isinstance(executor, CeleryExecutor)
    assert (executor.broker, executor.backend) == (broker, backend or broker)  # Redis holds the results too
    assert executor.retries.value == "disabled"  # the run's config still applies
    # A step leaves the run's process: Dagster refuses an ephemeral instance or a job it cannot rebuild elsewhere.
    assert set(pipeline_executor.get_requirements({})) == set(dg.multiple_process_executor_requirements())


def test_a_blank_broker_is_no_broker(monkeypatch, instance):
    monkeypatch.setenv(CELERY_BROKER_VARIABLE, "  ")
    assert type(executor_for_a_run(instance)).__name__ == "InProcessExecutor"
