"""StepGraph + settings -> the text of an Airflow DAG file; --install writes it.

The file imports `airflow.sdk` and `dagster_airflow.operator` only, and builds its operators from
literals: parsing it does no I/O and imports no Dagster.
"""

from __future__ import annotations

import datetime
import keyword
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

import attrs

from dagster_airflow.assets import DEFAULT_URI_TEMPLATE, asset_uri
from dagster_airflow.errors import ConfigurationError
from dagster_airflow.job.compile import Step, StepGraph, StepRetryPolicy
from dagster_airflow.job.params import check_defaults, compact_schema, param_default
from dagster_airflow.job.partitions import TIME
from dagster_airflow.model import CodeLocation, RunnerSpec, StorageSpec
from dagster_airflow.names import group_id_for, task_id_for
from dagster_airflow.scaffold import dag_settings
from dagster_airflow.scaffold.dag_check import check_dag_text
from dagster_airflow.scaffold.dag_literals import block_literal, check_writable
from dagster_airflow.scaffold.dag_literals import call as _call
from dagster_airflow.scaffold.dag_literals import literal as _literal
from dagster_airflow.scaffold.dagster_instance import (
    check_instance,
    end_task,
    instance_lines,
    instance_text,
)
from dagster_airflow.scaffold.doc_md import doc_md
from dagster_airflow.scaffold.environment import environment_block

# What the Airflow UI shows for each task instance of a mapped step: its Dagster mapping key.
MAP_INDEX_TEMPLATE = "{{ task.mapping_key }}"


def _identifiers(keys: Sequence[str], used: set[str] | None = None) -> dict[str, str]:
    """A distinct Python variable name for each step key (or other name)."""
    names: dict[str, str] = {}
    used = set() if used is None else used
    for key in keys:
        base = re.sub(r"[^A-Za-z0-9_]", "_", key.removesuffix("[?]"))
        if not base or base[0].isdigit() or keyword.iskeyword(base):
            base = f"step_{base}"
        name, n = base, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        names[key] = name
    return names


def _operator_kwargs(
    step: Step, mapping_key: str | None = None, queue: str | None = None, extra: Sequence[str] = ()
) -> list[str]:
    kwargs = [f"task_id={_literal(task_id_for(step.key))}"]
    if task_id_for(step.key) != step.key:  # the operator's step_key defaults to its task id
        kwargs.append(f"step_key={_literal(step.key)}")
    if queue is not None:
        kwargs.append(f"queue={_literal(queue)}")
    if mapping_key:
        kwargs.append(f"mapping_key={mapping_key}")
    if step.mapped_over:
        kwargs.append(f"map_index_template={_literal(MAP_INDEX_TEMPLATE)}")
    if step.mapping_keys_of:
        kwargs.append(f"mapping_keys_of={_literal(step.mapping_keys_of)}")
    kwargs += [f"{name}={value}" for name, value in retry_arguments(step.retry_policy).items()]
    if step.fan_in:
        # Runs when no upstream task failed, so a source that was skipped (or a map over zero
        # keys) does not skip it: the worker loads what was produced, as Dagster does.
        kwargs.append('trigger_rule="none_failed"')
    if step.assets:
        kwargs.append("outlets=[" + ", ".join(f"ASSETS[{_literal(k)}]" for k in step.assets) + "]")
    return kwargs + list(extra)


def _tasks_and_edges(graph: StepGraph, queues: Mapping[str, str]) -> tuple[str, str, bool]:
    """The DAG body: its tasks (each in its queue of ``queues``, by step key, if it has one),
    its edges, and whether it uses a mapped task group."""
    tick, tick_name = dag_settings.tick_task(graph)
    names = _identifiers([s.key for s in graph.steps], {tick_name} if tick else None)
    used = set(names.values())
    extra = dag_settings.step_keywords(graph)
    groups: dict[tuple[str, str], list[Step]] = {}
    for step in graph.steps:
        if step.mapped_over:
            groups.setdefault(step.mapped_over, []).append(step)
    lines: list[str] = []
    declared: set[tuple[str, str]] = set()  # edges Airflow gets from .expand() or the group
    for step in graph.steps:
        if not step.mapped_over:
            lines.append(
                _call(
                    f"    {names[step.key]} = ",
                    "DagsterOperator",
                    _operator_kwargs(
                        step, queue=queues.get(step.key), extra=extra.get(step.key, ())
                    ),
                )
            )
            continue
        members = groups[step.mapped_over]
        if step is not members[0]:
            continue
        producer, output = step.mapped_over
        keys = f"mapping_key={names[producer]}.output"
        member_keys = {m.key for m in members}
        declared |= {(producer, m.key) for m in members}
        if len(members) == 1:
            lines.append(
                _call(
                    f"    {names[step.key]} = ",
                    "DagsterOperator.partial",
                    _operator_kwargs(
                        step, queue=queues.get(step.key), extra=extra.get(step.key, ())
                    ),
                    f".expand({keys})",
                )
            )
            continue
        # Several steps over the same keys: a mapped task group, so that each mapping key's
        # task instances depend on each other only, as Dagster's mapped steps do.
        base = f"over_{names[producer]}" + ("" if output == "result" else f"_{output}")
        function = _identifiers([base], used)[base]
        group_id = group_id_for(producer, output)
        if lines and lines[-1]:
            lines.append("")
        lines.append(f"    @task_group(group_id={_literal(group_id)}, prefix_group_id=False)")
        lines.append(f"    def {function}(mapping_key):")
        for member in members:
            kwargs = _operator_kwargs(
                member, "mapping_key", queues.get(member.key), extra.get(member.key, ())
            )
            lines.append(_call(f"        {names[member.key]} = ", "DagsterOperator", kwargs))
        for member in members:
            for upstream in member.upstream:
                if upstream in member_keys:
                    lines.append(f"        {names[upstream]} >> {names[member.key]}")
                    declared.add((upstream, member.key))
        returned = ", ".join(names[m.key] for m in members)
        lines.append(f"        return {returned}")
        lines.append("")
        lines.append(f"    {returned} = {function}.expand({keys})")
        lines.append("")
    downstream: dict[str, list[str]] = {}
    if tick:  # the schedule's tick decides the run before any step starts
        lines.insert(0, tick)
        downstream[tick_name] = [names[s.key] for s in graph.steps if not s.upstream]
        names[tick_name] = tick_name
    for step in graph.steps:
        for upstream in step.upstream:
            if (upstream, step.key) not in declared:
                downstream.setdefault(upstream, []).append(names[step.key])
    edges = "\n".join(
        f"    {names[up]} >> {down[0]}"
        if len(down) == 1
        else f"    {names[up]} >> [{', '.join(down)}]"
        for up, down in downstream.items()
    )
    uses_groups = any(len(members) > 1 for members in groups.values())
    return "\n".join(lines).rstrip(), edges, uses_groups


def relocate(location: CodeLocation, host_root: str, image_root: str) -> CodeLocation:
    """The code location as a step's image sees it: paths under ``host_root`` (the directory
    the image copies) moved under ``image_root`` (where the image has it)."""
    if not PurePosixPath(image_root).is_absolute():
        raise ConfigurationError(
            f"--image-code-root {image_root!r} is not an absolute path; give the directory "
            "inside the image where the code is, such as /opt/dagster/app."
        )

    def move(path: str | None, what: str) -> str | None:
        if path is None:
            return None
        try:
            relative = Path(path).relative_to(host_root)
        except ValueError:
            raise ConfigurationError(
                f"the code location's {what} {path!r} is not under {host_root!r}, so its path "
                "inside the image is unknown; pass -d with the directory the image copies to "
                "--image-code-root."
            ) from None
        return str(PurePosixPath(image_root, *relative.parts))

    return attrs.evolve(
        location,
        python_file=move(location.python_file, "file"),
        workspace=move(location.workspace, "workspace"),
        working_directory=move(location.working_directory, "working directory"),
    )


def _start_date(graph: StepGraph, today: datetime.date) -> str:
    """A time partitions' first launch (their first window's end), else the day of scaffolding."""
    start = graph.partitions.start if graph.partitions else None
    if start is None and graph.schedule is not None:
        start = dag_settings.SCHEDULE_START  # any tick may be run (dags test, a backfill)
    if start is None:
        return f"datetime.datetime({today.year}, {today.month}, {today.day}, tzinfo=datetime.UTC)"
    utc = start.astimezone(datetime.UTC)
    return (
        f"datetime.datetime({utc.year}, {utc.month}, {utc.day}, {utc.hour}, {utc.minute}, "
        "tzinfo=datetime.UTC)"
    )


def _assets(graph: StepGraph, uri_template: str, on_assets: bool) -> str:
    """The ASSETS literal: an Airflow Asset per Dagster asset the DAG makes (or waits for)."""
    keys = sorted(
        {k for s in graph.steps for k in s.assets} | set(_schedule_assets(graph, on_assets))
    )
    if not keys:
        return ""
    lines = "".join(
        f"    {_literal(k)}: Asset(name={_literal(k)}, "
        f"uri={_literal(asset_uri(k, uri_template))}),\n"
        for k in keys
    )
    return (
        "# The Dagster assets this DAG materializes (each task's outlets) or waits for, as\n"
        "# Airflow Assets: their URIs are ASSET_URI_TEMPLATE with {key} the asset key.\n"
        f"ASSET_URI_TEMPLATE = {_literal(uri_template)}\nASSETS = {{\n{lines}}}\n\n"
    )


def _schedule_assets(graph: StepGraph, on_assets: bool) -> tuple[str, ...]:
    if not on_assets:
        return ()
    if not graph.source_assets:
        raise ConfigurationError(
            f"job {graph.job_name!r} reads no asset that another job materializes, so "
            "--schedule-on-assets has nothing to wait for; leave the flag out."
        )
    return graph.source_assets


def _schedule(graph: StepGraph, on_assets: bool = False) -> str:
    if on_assets:
        return (
            "[" + ", ".join(f"ASSETS[{_literal(k)}]" for k in _schedule_assets(graph, True)) + "]"
        )
    if graph.schedule is not None:
        return dag_settings.schedule_source(graph)
    partitions = graph.partitions
    if partitions is None or partitions.cron is None:
        return "None"
    return (
        f"CronTriggerTimetable({_literal(partitions.cron)}, "
        f"timezone={_literal(partitions.timezone or 'UTC')})"
    )


def _params(graph: StepGraph) -> str:
    """The PARAMS literal: one Param per top-level key of the run config schema, defaulting to
    the scaffolded run config, and the partition param of a partitioned job."""
    lines = []
    for key in graph.config_schema.get("properties", {}):
        value = graph.run_config.get(key, {})
        default = _literal(param_default(value), 8, 8)
        if key in graph.run_config and param_default(value) == value:
            # The run config itself, written once (it may name every op of a big job).
            default = f"RUN_CONFIG[{_literal(key)}]"
        lines.append(
            f"    {_literal(key)}: Param(\n"
            f"        {default},\n"
            f'        **RUN_CONFIG_SCHEMA["properties"][{_literal(key)}],\n'
            "    ),"
        )
    partitions = graph.partitions
    if partitions is not None:
        examples = ", ".join(repr(k) for k in partitions.examples)
        if partitions.kind == TIME:
            what = (
                "empty: the partition Dagster's schedule launches at the run's logical date "
                f"(the last one ended by then); keys such as {examples}"
            )
        else:
            what = f"keys such as {examples}"
        schema: dict = {"type": ["null", "string"]}
        if partitions.keys:
            schema["enum"] = [None, *partitions.keys]
        description = f"{partitions.description}; {what}."
        lines.append(
            "    # The Dagster partition this run executes.\n"
            '    "partition": Param(\n'
            "        None,\n"
            f"        description={_literal(description, 8, 20)},\n"
            + "".join(f"        {k}={_literal(v, 8, 9 + len(k))},\n" for k, v in schema.items())
            + "    ),"
        )
    return "{\n" + "\n".join(lines) + "\n}" if lines else "{}"


# The Airflow retries of a task whose op has no RetryPolicy: each runs only when Dagster asks for
# it (RetryRequested(max_retries=N) is known at run time only, Airflow's tries when a run starts).
RETRY_REQUESTS = 10


def retry_arguments(policy: StepRetryPolicy | None) -> dict[str, str]:
    """A task's Airflow retry arguments (as Python source) for its op's Dagster RetryPolicy.

    Each Dagster attempt is an Airflow try, so ``retries`` is ``max_retries``. The wait before a
    try is Dagster's own (its backoff and jitter drawn by Dagster, handed over by the operator's
    retry policy); ``retry_delay`` and ``retry_exponential_backoff`` say the same as closely as
    Airflow's settings can, for the UI and for a try that ends with no word from Dagster.
    """
    if policy is None:
        return {}
    arguments = {
        "retries": str(policy.max_retries),
        "retry_delay": f"datetime.timedelta(seconds={policy.delay or 0:g})",
    }
    if not math.isfinite(policy.delay or 0):
        raise ConfigurationError(
            f"a RetryPolicy of the job has the delay {policy.delay!r}, which Airflow's "
            "retry_delay cannot hold; give the policy a finite delay in seconds."
        )
    if policy.backoff == "EXPONENTIAL":
        arguments["retry_exponential_backoff"] = "2.0"
    return arguments


def render_dag(
    graph: StepGraph,
    runner: RunnerSpec,
    storage: StorageSpec,
    dag_id: str,
    command: str,
    today: datetime.date | None = None,
    asset_uri_template: str = DEFAULT_URI_TEMPLATE,
    schedule_on_assets: bool = False,
    queue: str | None = None,
    step_queues: Mapping[str, str] | None = None,
    environment: Mapping[str, str | None] | None = None,
    dagster_home: str | None = None,
    dagster_ui_url: str | None = None,
) -> str:
    """The DAG file's text. ``queue`` is every task's executor queue (in DEFAULT_ARGS);
    ``step_queues`` (step key or task id -> queue) overrides it for some tasks;
    ``environment`` is ENVIRONMENT (scaffold/environment.py)."""
    today = today or datetime.date.today()
    description = (graph.description or f"Dagster job {graph.job_name}").splitlines()[0]
    tasks, edges, uses_groups = _tasks_and_edges(graph, _queues_by_step(graph, step_queues or {}))
    queue_line = (
        ""
        if queue is None
        else "    # The executor queue of every task (CeleryExecutor: the workers listening on it)."
        f'\n    "queue": {_literal(_checked_queue(queue, "--queue"))},\n'
    )
    assets = _assets(graph, asset_uri_template, schedule_on_assets)
    environment = dict(environment or {})
    environment_line = '    "environment": ENVIRONMENT,\n' if environment else ""
    sdk_names = ["DAG", "Param"]
    dag_settings.refusals(graph, runner.name)
    our_names = ["DagsterOperator"]
    if graph.schedule is not None and not schedule_on_assets:
        our_names.insert(0, "DagsterCronTimetable")
    elif graph.partitions is not None and graph.partitions.cron and not schedule_on_assets:
        # Ours, not airflow.sdk's: Airflow 3.1's SDK has none (dagster_airflow.task.airflow_compat).
        our_names.insert(0, "CronTriggerTimetable")
    if assets:
        sdk_names.insert(1, "Asset")
    if uses_groups:
        sdk_names.append("task_group")
    for what, value in (
        ("the run config", graph.run_config),
        (f"the {runner.name} runner's options", runner.options),
        (f"the {storage.name} storage's options", storage.options),
        ("the code location", graph.code_location.to_dict()),
        ("the job's run config schema (a config default)", graph.config_schema),
    ):
        check_writable(value, what)
    _check_unique_task_ids(graph)
    schema = compact_schema(graph.config_schema)  # the file's and the check's, made once
    check_defaults(schema, graph.run_config)
    check_instance(graph, dagster_home, dagster_ui_url)
    instance_block = instance_lines(dagster_home, dagster_ui_url)
    doc = doc_md(graph, command, runner, storage, instance_text(dagster_home, dagster_ui_url))
    docstring = _docstring(graph.job_name)
    dag_lines = "".join(f"    {k},\n" for k in dag_settings.dag_keywords(graph))
    text = (
        f'''"""{docstring}"""

import datetime

from airflow.sdk import {", ".join(sdk_names)}

from dagster_airflow import {", ".join(our_names)}

# The command that wrote this file: run it again when the job's ops or their dependencies change.
SCAFFOLD_COMMAND = {_literal(command)}

{assets}# The job's run config schema as JSON Schema. A DAG run's conf may hold a run config
# fragment under its keys: it is deep-merged over RUN_CONFIG below, and Dagster validates it.
RUN_CONFIG_SCHEMA = {_literal(schema, 0, 20)}

# The job's run config, every task's (string values may use Airflow templates: {{{{ ds }}}}).
RUN_CONFIG = {_literal(graph.run_config, 0, 13)}

{environment_block(environment)}DEFAULT_ARGS = {{
    # Where each step runs, and that runner's options.
    "runner": {_literal(runner.to_dict(), 4, 14)},
    # Where each step's outputs go for the next steps, and that storage's options.
    "storage": {_literal(storage.to_dict(), 4, 15)},
    # The Dagster job.
    "code_location": {_literal(graph.code_location.to_dict(), 4, 21)},
    "job_name": {_literal(graph.job_name)},
    # Retries are Dagster's (see above): tries for up to this many retries that an op without a
    # RetryPolicy requests (RetryRequested); a task with a policy has its own max_retries.
    "retries": {RETRY_REQUESTS},
    "dagster_retries_only": True,
{environment_line}{queue_line}{instance_block}{_settings_lines(graph)}    "owner": "airflow",
}}

# The trigger form's fields: the run config's keys, RUN_CONFIG's values as defaults (those that
# hold no template).
PARAMS = {_params(graph)}

DOC_MD = {block_literal(doc)}

with DAG(
    dag_id={_literal(dag_id)},
    description={_literal(description)},
    schedule={_schedule(graph, schedule_on_assets)},
    start_date={_start_date(graph, today)},
    catchup=False,
    tags={_literal(dag_settings.dag_tags(graph), 4, 9)},
{dag_lines}    default_args=DEFAULT_ARGS,
    # The tasks' run config and its schema. As macros, Airflow keeps them out of the DAG it
    # stores and serves, which holds them once already: the trigger form's defaults and schemas.
    user_defined_macros={{"run_config": RUN_CONFIG, "run_config_schema": RUN_CONFIG_SCHEMA}},
    doc_md=DOC_MD,
) as dag:
{tasks}

{edges}
{end_task(dagster_home)}
# The trigger form, given to the DAG once its tasks are made: Airflow copies a DAG's params into
# each task made after them, and would then store and serve the whole schema once per task.
# Added, not assigned: the scaffold checked the defaults against their schemas, and Airflow
# checks the params again as it creates each run; assigning would walk the whole run config
# through jsonschema at every parse of the file.
dag.params.update(PARAMS)
'''.rstrip()
        + "\n"
    )
    expected = _expected_values(graph, runner, storage, dag_id, description, asset_uri_template)
    expected[("DEFAULT_ARGS", "retries")] = RETRY_REQUESTS
    expected[("DEFAULT_ARGS", "dagster_retries_only")] = True
    expected[("DAG", "user_defined_macros")] = {
        "run_config": graph.run_config,
        "run_config_schema": schema,
    }
    expected[("SCAFFOLD_COMMAND",)] = command
    expected[("DOC_MD",)] = doc
    if queue is not None:
        expected[("DEFAULT_ARGS", "queue")] = queue
    if environment:
        expected[("ENVIRONMENT",)] = expected[("DEFAULT_ARGS", "environment")] = environment
    if dagster_home is not None:
        expected[("DEFAULT_ARGS", "dagster_home")] = dagster_home
    if dagster_ui_url is not None:
        expected[("DEFAULT_ARGS", "dagster_ui_url")] = dagster_ui_url
    expected |= dag_settings.expected_values(graph)
    task_ids = {task_id_for(s.key): s.key for s in graph.steps}
    if dag_settings.has_tick(graph):
        task_ids[dag_settings.TICK_TASK_ID] = dag_settings.TICK_TASK_ID
    check_dag_text(text, graph.job_name, expected, task_ids, docstring)
    return text


def _settings_lines(graph: StepGraph) -> str:
    """DEFAULT_ARGS lines from the job's schedule and tags (dag_settings.default_args)."""
    lines = ""
    for name, value in dag_settings.default_args(graph).items():
        lines += f"    {_literal(name)}: {_literal(value, 4, 8 + len(name))},\n"
    return lines


def _docstring(job_name: str) -> str:
    """The DAG file's docstring: fixed text, and the job's name only where it is plainly one
    (Dagster's rule for names), so no value is ever written outside a literal."""
    plain = re.fullmatch(r"[A-Za-z0-9_]+", job_name)
    job = f"the Dagster job {job_name!r}" if plain else "a Dagster job"
    return f"""Airflow DAG for {job}, scaffolded by dagster-airflow.

Each Airflow task runs one Dagster execution step in isolation. Edit DEFAULT_ARGS freely (where
steps run, where their outputs go, owner); a task may override any of them with its own argument.
When the job's ops or their dependencies change, scaffold again with the command in
SCAFFOLD_COMMAND below (`dagster-airflow check FILE` says whether they did).

Retries are Dagster's. A task whose op has a RetryPolicy gets its max_retries as `retries`;
each Dagster attempt is one Airflow try, started after the delay Dagster computed (backoff and
jitter included). `retry_delay` and `retry_exponential_backoff` show that policy as closely as
Airflow's settings can and count only for a try that ended with no word from Dagster: Airflow has
no linear backoff, and its exponential backoff jitters by its own rule, not the policy's Jitter.
An op with no policy is retried only when it raises RetryRequested, as often as Dagster would
retry it, up to DEFAULT_ARGS' "retries" (raise it for a RetryRequested(max_retries=N) above it).
With "dagster_retries_only", a task is never retried otherwise: not for a failure Dagster does
not retry, a timeout, nor a lost worker. For Airflow's own retries as well, set it to False.
"""


def _expected_values(
    graph: StepGraph,
    runner: RunnerSpec,
    storage: StorageSpec,
    dag_id: str,
    description: str,
    asset_uri_template: str,
) -> dict[tuple, object]:
    """What the DAG file's values must evaluate back to, by path (see dag_check.py)."""
    expected: dict[tuple, object] = {
        ("DAG", "dag_id"): dag_id,
        ("DAG", "description"): description,
        ("DEFAULT_ARGS", "runner"): runner.to_dict(),
        ("DEFAULT_ARGS", "storage"): storage.to_dict(),
        ("DEFAULT_ARGS", "code_location"): graph.code_location.to_dict(),
        ("DEFAULT_ARGS", "job_name"): graph.job_name,
        ("RUN_CONFIG",): graph.run_config,
    }
    for key in graph.config_schema.get("properties", {}):
        expected[("PARAMS", key, "default")] = param_default(graph.run_config.get(key, {}))
    for step in graph.steps:
        for key in step.assets:
            expected[("ASSETS", key, "name")] = key
            expected[("ASSETS", key, "uri")] = asset_uri(key, asset_uri_template)
    return expected


def _check_unique_task_ids(graph: StepGraph) -> None:
    seen: dict[str, str] = {}
    for step in graph.steps:
        task_id = task_id_for(step.key)
        if task_id in seen:
            raise ConfigurationError(
                f"steps {seen[task_id]!r} and {step.key!r} of job {graph.job_name!r} would both "
                f"be the Airflow task {task_id!r}; rename one of their ops."
            )
        seen[task_id] = step.key


def _checked_queue(queue: str, option: str) -> str:
    if not isinstance(queue, str) or not re.fullmatch(r"[\w.@:-]+", queue):
        raise ConfigurationError(
            f"{option} {queue!r} is not a queue name; use letters, digits, '_', '.', '-', '@' "
            "and ':'."
        )
    return queue


def _queues_by_step(graph: StepGraph, step_queues: Mapping[str, str]) -> dict[str, str]:
    """``step_queues`` keyed by step key, each name (a step key or a task id) checked."""
    by_name = {}
    for step in graph.steps:
        by_name[step.key] = by_name[task_id_for(step.key)] = step.key
    queues = {}
    for name, queue in step_queues.items():
        if name not in by_name:
            raise ConfigurationError(
                f"--step-queue names the step {name!r}, which job {graph.job_name!r} does not "
                f"have; its steps are: {', '.join(sorted(s.key for s in graph.steps))}."
            )
        queues[by_name[name]] = _checked_queue(queue, f"--step-queue {name}=")
    return queues


def command_line(argv: Sequence[str]) -> str:
    return "dagster-airflow " + shlex.join(argv)
