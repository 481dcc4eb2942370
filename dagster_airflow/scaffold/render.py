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
from dagster_airflow.job.compile import Step, StepGraph, StepRetryPolicy, plan_fingerprint
from dagster_airflow.job.params import compact_schema, param_default
from dagster_airflow.job.partitions import TIME
from dagster_airflow.model import CodeLocation, RunnerSpec, StorageSpec
from dagster_airflow.names import group_id_for, task_id_for
from dagster_airflow.scaffold.dag_check import check_dag_text
from dagster_airflow.scaffold.dag_literals import block_literal, check_writable, string_literal

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


def _call(prefix: str, function: str, kwargs: Sequence[str], suffix: str = "") -> str:
    """``prefix + function(kwargs) + suffix`` at the indent of ``prefix``, laid out as ruff format
    would: on one line when it fits, else the arguments on one line of their own, else one a
    line."""
    indent = " " * (len(prefix) - len(prefix.lstrip()))
    flat = f"{prefix}{function}({', '.join(kwargs)}){suffix}"
    if len(flat) <= 99:
        return flat
    inner = f"{indent}    {', '.join(kwargs)}"
    if len(inner) <= 99:
        return f"{prefix}{function}(\n{inner}\n{indent}){suffix}"
    lines = "".join(f"{indent}    {k},\n" for k in kwargs)
    return f"{prefix}{function}(\n{lines}{indent}){suffix}"


def _operator_kwargs(
    step: Step, mapping_key: str | None = None, queue: str | None = None
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
    return kwargs


def _tasks_and_edges(graph: StepGraph, queues: Mapping[str, str]) -> tuple[str, str, bool]:
    """The DAG body: its tasks (each in its queue of ``queues``, by step key, if it has one),
    its edges, and whether it uses a mapped task group."""
    names = _identifiers([s.key for s in graph.steps])
    used = set(names.values())
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
                    _operator_kwargs(step, queue=queues.get(step.key)),
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
                    _operator_kwargs(step, queue=queues.get(step.key)),
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
            kwargs = _operator_kwargs(member, "mapping_key", queues.get(member.key))
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


def _literal(value: object, indent: int = 4, column: int = 0, width: int = 99) -> str:
    """A Python literal for JSON-like data, laid out as ruff format would: on one line when it
    fits, else one item a line."""
    if isinstance(value, str):
        return string_literal(value)
    if (
        value is None
        or isinstance(value, bool | int)
        or (isinstance(value, float) and math.isfinite(value))
    ):
        return repr(value)
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            key = f"{_literal(k)}: "
            items.append(key + _literal(v, indent + 4, indent + 4 + len(key), width))
        start, end = "{", "}"
    elif isinstance(value, list | tuple):
        items = [_literal(v, indent + 4, indent + 4, width) for v in value]
        start, end = "[", "]"
    else:
        raise ConfigurationError(
            f"cannot write {value!r} ({type(value).__name__}) into a DAG file; run config and "
            "backend options must be strings, numbers, booleans, lists and mappings."
        )
    flat = start + ", ".join(items) + end
    if column + len(flat) + 1 <= width and "\n" not in flat:
        return flat
    pad = " " * (indent + 4)
    return start + "\n" + "".join(f"{pad}{item},\n" for item in items) + " " * indent + end


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
            default = f'DEFAULT_ARGS["run_config"][{_literal(key)}]'
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


def _cell(text: str) -> str:
    """Text for a Markdown table cell: one line, no column break."""
    return " ".join(text.split()).replace("|", "\\|")


def _runner_text(runner: RunnerSpec) -> str:
    options = ", ".join(f"{k}={v!r}" for k, v in runner.options.items() if not isinstance(v, dict))
    return f"`{runner.name}`" + (f" ({_cell(options)})" if options else "")


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
    return f"`{_cell(uri)}` (storage `{storage.name}`)"


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
        op_text = f"`{op.name}`" + (f": {_cell(op.description)}" if op.description else "")
        name = f"`{step.key}`" + (f" (task `{task_id}`)" if task_id != step.key else "")
        rows.append(f"| {name} | {op_text if op else ''} |")
    if not rows:
        return ""
    return "\n".join(["| Step (task) | Op |", "| --- | --- |", *rows])


def _doc_md(graph: StepGraph, command: str, runner: RunnerSpec, storage: StorageSpec) -> str:
    """The DAG's doc_md: the job's description, its ops, where each step runs and where its
    outputs go (as scaffolded: DEFAULT_ARGS, which a task's own argument overrides), how to
    regenerate the file, the plan's fingerprint (a changed job makes a new DAG version)."""
    text = (
        f"### Dagster job `{graph.job_name}`\n\n{graph.description or ''}\n\n"
        f"Each step runs with runner {_runner_text(runner)}; its outputs go to "
        f"{_outputs_text(storage)}, where `{{step}}` is the step key (for a mapped step: "
        "`op[{mapping key}]`).\n\n"
        f"{_steps_table(graph)}\n\n"
        "Each task's page has a *Dagster step* tab: its events, outputs and error.\n\n"
        f"Regenerate this file: `{command}`; check it: `dagster-airflow check FILE`.\n\n"
        f"Plan fingerprint: `{plan_fingerprint(graph)}`\n"
    ).replace("\n\n\n\n", "\n\n")
    return text


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
) -> str:
    """The DAG file's text. ``queue`` is every task's executor queue (in DEFAULT_ARGS);
    ``step_queues`` (step key or task id -> queue) overrides it for some tasks."""
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
    sdk_names = ["DAG", "Param"]
    our_names = ["DagsterOperator"]
    if graph.partitions is not None and graph.partitions.cron and not schedule_on_assets:
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
    doc = _doc_md(graph, command, runner, storage)
    docstring = _docstring(graph.job_name)
    text = (
        f'''"""{docstring}"""

import datetime

from airflow.sdk import {", ".join(sdk_names)}

from dagster_airflow import {", ".join(our_names)}

# The command that wrote this file: run it again when the job's ops or their dependencies change.
SCAFFOLD_COMMAND = {_literal(command)}

{assets}# The job's run config schema as JSON Schema. A DAG run's conf may hold a run config
# fragment under its keys: it is deep-merged over run_config below, and Dagster validates it.
RUN_CONFIG_SCHEMA = {_literal(schema, 0, 20)}

DEFAULT_ARGS = {{
    # Where each step runs, and that runner's options.
    "runner": {_literal(runner.to_dict(), 4, 14)},
    # Where each step's outputs go for the next steps, and that storage's options.
    "storage": {_literal(storage.to_dict(), 4, 15)},
    # The Dagster job and its run config (string values may use Airflow templates: {{{{ ds }}}}).
    "code_location": {_literal(graph.code_location.to_dict(), 4, 21)},
    "job_name": {_literal(graph.job_name)},
    "run_config": {_literal(graph.run_config, 4, 18)},
    "run_config_schema": RUN_CONFIG_SCHEMA,
{queue_line}    "owner": "airflow",
}}

# The trigger form's fields: the run config's keys, the scaffolded values as defaults (where
# they hold no template, DEFAULT_ARGS' own).
PARAMS = {_params(graph)}

DOC_MD = {block_literal(doc)}

with DAG(
    dag_id={_literal(dag_id)},
    description={_literal(description)},
    schedule={_schedule(graph, schedule_on_assets)},
    start_date={_start_date(graph, today)},
    catchup=False,
    tags=["dagster"],
    default_args=DEFAULT_ARGS,
    doc_md=DOC_MD,
) as dag:
{tasks}

{edges}

# The trigger form, given to the DAG once its tasks are made: Airflow copies a DAG's params into
# each task made after them, and would then store and serve the whole schema once per task.
dag.params = PARAMS
'''.rstrip()
        + "\n"
    )
    expected = _expected_values(graph, runner, storage, dag_id, description, asset_uri_template)
    expected[("DEFAULT_ARGS", "run_config_schema")] = schema
    expected[("SCAFFOLD_COMMAND",)] = command
    expected[("DOC_MD",)] = doc
    if queue is not None:
        expected[("DEFAULT_ARGS", "queue")] = queue
    task_ids = {task_id_for(s.key): s.key for s in graph.steps}
    check_dag_text(text, graph.job_name, expected, task_ids, docstring)
    return text


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
An op with no policy is not retried; one that raises RetryRequested(max_retries=N) needs
retries=N on its task, as Airflow counts the tries. For a DAG-wide retry, add "retries" and
"retry_delay" to DEFAULT_ARGS.
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
        ("DEFAULT_ARGS", "run_config"): graph.run_config,
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
