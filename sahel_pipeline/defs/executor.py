"""How a run's steps execute: in the run's process, or on Celery workers when the deployment names a broker."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

# Read when a run starts, in the process that orchestrates it (the run worker the daemon or the webserver launches),
# never when the code location loads: a deployment switches every run (scheduled, sensed, launched from the UI) to
# its Celery workers by setting these in the services' environment, with no run config to remember.
CELERY_BROKER_VARIABLE = "SAHEL_CELERY_BROKER"
CELERY_BACKEND_VARIABLE = "SAHEL_CELERY_BACKEND"


def celery_broker() -> str | None:
    """The Celery broker's URL (e.g. redis://broker.internal:6379/0) runs send their steps to, or None: in-process."""
    return (dg.EnvVar(CELERY_BROKER_VARIABLE).get_value() or "").strip() or None


def celery_backend(broker: str) -> str:
    """Where the workers store the steps' results: $SAHEL_CELERY_BACKEND, else the broker itself (Redis is both)."""
    return (dg.EnvVar(CELERY_BACKEND_VARIABLE).get_value() or "").strip() or broker


def _requirements(_config) -> Sequence[dg.ExecutorRequirement]:
    # A step on another machine rebuilds the job from the code location, reads the run from a shared instance, and
    # reads its inputs from the warehouse: what Dagster checks for every executor that leaves the run's process.
    return dg.multiple_process_executor_requirements() if celery_broker() else []


@dg.executor(name="sahel", config_schema=dg.in_process_executor.config_schema.as_field(), requirements=_requirements)
def pipeline_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """The in-process executor (the default: the fits use a pool of worker processes), or dagster-celery's executor
    when $SAHEL_CELERY_BROKER is set, each step then a Celery task run by whichever worker takes it. Run config
    takes the in-process executor's keys (retries), which the Celery executor honours too."""
    broker = celery_broker()
    if broker is None:
        return dg.in_process_executor.executor_creation_fn(init_context)  # type: ignore[misc]
    try:
        from dagster_celery import celery_executor
    except ImportError as error:
        raise dg.DagsterInvariantViolationError(
            f"{CELERY_BROKER_VARIABLE} is set ({broker}) but dagster-celery is not installed: "
            "pip install -r requirements.lock, or pip install 'sahel-pipeline[celery]'"
        ) from error
    config = {"broker": broker, "backend": celery_backend(broker), "retries": init_context.executor_config["retries"]}
    celery_context = dg.InitExecutorContext(
        job=init_context.job, executor_def=celery_executor, executor_config=config, instance=init_context.instance
    )
    return celery_executor.executor_creation_fn(celery_context)  # type: ignore[misc]
