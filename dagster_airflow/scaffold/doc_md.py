"""The DAG's doc_md: the job's description, where its steps run and their outputs go, how to
regenerate the file, and the plan's fingerprint (a changed job makes a new DAG version)."""

from __future__ import annotations

from dagster_airflow.job.compile import StepGraph, plan_fingerprint
from dagster_airflow.model import RunnerSpec, StorageSpec
from dagster_airflow.names import task_id_for


def cell(text: str) -> str:
    """Text for a Markdown table cell: one line, no column break."""
    return " ".join(text.split()).replace("|", "\\|")


def _runner_text(runner: RunnerSpec) -> str:
    options = ", ".join(f"{k}={v!r}" for k, v in runner.options.items() if not isinstance(v, dict))
    return f"`{runner.name}`" + (f" ({cell(options)})" if options else "")


def _outputs_text(storage: StorageSpec) -> str:
    """Where the steps' outputs go, as the storage names them, for any DAG run."""
    from dagster_airflow.plugins.manager import get_plugins

    run, step, name = "RUN-ID", "STEP-KEY", "OUTPUT"
    try:
        backend = get_plugins().storage(storage.name).create(storage.options)
        uri = backend.uri(backend.key(run, step, name))
    except Exception:  # a plugin storage that cannot be built here: say its name
        return f"storage `{storage.name}`"
    uri = uri.replace(run, "{dagster run id}").replace(step, "{step}").replace(name, "{output}")
    return f"`{cell(uri)}` (storage `{storage.name}`)"


def _steps_table(graph: StepGraph) -> str:
    """A row for each step whose task id, op or description says more than its step key (the
    grid shows every task already): one short row, the runner and storage being said once."""
    rows = []
    for step in graph.steps:
        op = graph.ops.get(step.key)
        task_id = task_id_for(step.key)
        plain = op is not None and op.name == task_id == step.key and not op.description
        if plain:
            continue
        op_text = f"`{op.name}`" + (f": {cell(op.description)}" if op.description else "")
        name = f"`{step.key}`" + (f" (task `{task_id}`)" if task_id != step.key else "")
        rows.append(f"| {name} | {op_text if op else ''} |")
    if not rows:
        return ""
    return "\n".join(["| Step (task) | Op |", "| --- | --- |", *rows])


def doc_md(
    graph: StepGraph,
    command: str,
    runner: RunnerSpec,
    storage: StorageSpec,
    instance: str = "",
) -> str:
    """The DAG's doc_md: the job's description, its ops, where each step runs and where its
    outputs go (as scaffolded: DEFAULT_ARGS, which a task's own argument overrides), how to
    regenerate the file, the plan's fingerprint (a changed job makes a new DAG version)."""
    text = (
        f"### Dagster job `{graph.job_name}`\n\n{graph.description or ''}\n\n"
        f"Each step runs with runner {_runner_text(runner)}; its outputs go to "
        f"{_outputs_text(storage)}, where `{{step}}` is the step key (for a mapped step: "
        "`op[{mapping key}]`).\n\n"
        f"{instance}{_steps_table(graph)}\n\n"
        "Each task's page has a *Dagster step* tab: its events, outputs and error.\n\n"
        f"Regenerate this file: `{command}`; check it: `dagster-airflow check FILE`.\n\n"
        f"Plan fingerprint: `{plan_fingerprint(graph)}`\n"
    ).replace("\n\n\n\n", "\n\n")
    return text
