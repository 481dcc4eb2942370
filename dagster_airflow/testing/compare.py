"""Run a job through a real Airflow and through Dagster itself, and list every difference.

``compare_job(location, "my_job", run_config)`` scaffolds the job's DAG with the real
``dagster-airflow scaffold``, runs it with ``airflow dags test`` (an ``AirflowHome`` on SQLite,
filesystem storage in a temporary directory), runs the same job and run config in process with
Dagster over the same IO manager, and compares step by step: the outcome, the number of attempts,
every output's value, the hooks fired, the assets materialized and the asset checks evaluated.
The returned ``Comparison`` lists one line per difference and is empty when the runs agree.
"""

from __future__ import annotations

import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.model import CodeLocation, dagster_run_id
from dagster_airflow.step_result import StepEvent
from dagster_airflow.storage.base import EVENT_LOG_NAME, OUTPUTS_RECORD_NAME
from dagster_airflow.storage.filesystem import FilesystemStorage

SUCCESS, FAILURE, SKIPPED, UPSTREAM_FAILED = "success", "failure", "skipped", "upstream_failed"
# Airflow's task states in the words of Dagster's step outcomes.
_AIRFLOW_OUTCOMES = {
    "success": SUCCESS,
    "failed": FAILURE,
    "skipped": SKIPPED,
    "upstream_failed": UPSTREAM_FAILED,
}
_DAGSTER_OUTCOMES = {"STEP_SUCCESS": SUCCESS, "STEP_FAILURE": FAILURE, "STEP_SKIPPED": SKIPPED}
_HOOK_WORDS = {"HOOK_COMPLETED": "completed", "HOOK_SKIPPED": "skipped", "HOOK_ERRORED": "errored"}
# A step of a dynamic output: "op[mapping_key]"; "op[?]" before its keys are known.
_MAPPED_KEY = re.compile(r"^(?P<base>.+)\[(?P<key>[^\[\]]+)\]$")
UNRESOLVED = "?"
# Options the comparison sets itself: the DAG id, its storage, its run config.
_OWN_OPTIONS = ("--dag-id", "--storage", "--storage-option", "--install", "-e", "-c", "--config")


@attrs.frozen
class Unreadable:
    """An output that could not be unpickled here: compared by its bytes."""

    size: int
    data: bytes = attrs.field(repr=False)

    def __repr__(self) -> str:
        return f"<{self.size} bytes that do not unpickle here>"


@attrs.frozen
class StepRecord:
    """What one step did in one run."""

    key: str
    outcome: str  # success, failure, skipped, upstream_failed, or "not run (STATE)"
    attempts: int = 0
    outputs: Mapping[str, Any] = attrs.field(factory=dict)
    events: tuple[StepEvent, ...] = ()

    def hooks(self) -> Counter:
        return Counter(
            (e.hook_name or "?", _HOOK_WORDS[e.event_type])
            for e in self.events
            if e.event_type in _HOOK_WORDS
        )

    def materializations(self) -> Counter:
        return Counter(
            (e.asset_key, e.partition)
            for e in self.events
            if e.event_type == "ASSET_MATERIALIZATION"
        )

    def checks(self) -> dict[tuple[str, str], list[str]]:
        found: dict[tuple[str, str], list[str]] = {}
        for e in self.events:
            if e.event_type == "ASSET_CHECK_EVALUATION":
                verdict = f"{'passed' if e.passed else 'failed'} ({e.severity})"
                found.setdefault((e.asset_key, e.check_name), []).append(verdict)
        return found


@attrs.frozen
class RunRecord:
    """Every step of one run, by Dagster step key."""

    side: str  # "Airflow" or "Dagster"
    steps: Mapping[str, StepRecord]
    run_id: str | None = None
    # Airflow task instances that stand for no Dagster step: "task_id" or "task_id[map_index]".
    unmatched: tuple[str, ...] = ()


@attrs.frozen(repr=False)
class Comparison:
    """The differences between a job's Airflow run and Dagster's own run of it."""

    job_name: str
    differences: tuple[str, ...]
    airflow: RunRecord | None = None
    dagster: RunRecord | None = None
    airflow_output: str = ""  # what `airflow dags test` printed, to read when a step differs
    work_dir: str = ""  # the run config, both storages, the Airflow home (unless one was given)

    @property
    def matches(self) -> bool:
        return not self.differences

    def __repr__(self) -> str:
        return f"<Comparison of job {self.job_name!r}: {len(self.differences)} differences>"

    def __str__(self) -> str:
        if self.matches:
            steps = len(self.dagster.steps) if self.dagster else 0
            return (
                f"job {self.job_name!r}: Airflow and Dagster agree on all {steps} steps "
                "(outcomes, attempts, outputs, hooks, materializations, asset checks)."
            )
        count = len(self.differences)
        lines = [f"job {self.job_name!r}: {count} difference{'s' * (count != 1)} between "]
        lines[0] += "its Airflow run and Dagster's own run:"
        return "\n".join(lines + [f"- {d}" for d in self.differences])


def _short(value: Any, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # values whose == is not a bool (arrays, frames): compare their pickles
        try:
            return pickle.dumps(a) == pickle.dumps(b)
        except Exception:
            return False


def _count(n: int) -> str:
    return f"{n} time{'s' * (n != 1)}"


def differences(airflow: RunRecord, dagster: RunRecord) -> list[str]:
    """One line for each thing the two runs did differently, step by step."""
    lines = []
    for key in sorted(set(airflow.steps) | set(dagster.steps)):
        ours, theirs = airflow.steps.get(key), dagster.steps.get(key)
        if ours is None:
            lines.append(
                f"step {key!r} has no Airflow task (it ended {theirs.outcome} under Dagster)"
            )
            continue
        if theirs is None:
            lines.append(f"step {key!r} is not a step of Dagster's run (Airflow: {ours.outcome})")
            continue
        lines += _step_differences(key, ours, theirs)
    lines += [f"Airflow task {name!r} stands for no Dagster step" for name in airflow.unmatched]
    return lines


def _step_differences(key: str, ours: StepRecord, theirs: StepRecord) -> list[str]:
    step = f"step {key!r}"
    lines = []
    if ours.outcome != theirs.outcome:
        lines.append(f"{step}: {ours.outcome} under Airflow, {theirs.outcome} under Dagster")
    ran = {SUCCESS, FAILURE}
    if ours.outcome in ran and theirs.outcome in ran and ours.attempts != theirs.attempts:
        lines.append(
            f"{step}: {ours.attempts} attempts under Airflow, {theirs.attempts} under Dagster"
        )
    missing = object()
    for name in sorted(set(ours.outputs) | set(theirs.outputs)):
        a, d = ours.outputs.get(name, missing), theirs.outputs.get(name, missing)
        if a is missing or d is missing or not _same(a, d):
            a, d = ("not written" if v is missing else _short(v) for v in (a, d))
            lines.append(f"{step}: output {name!r} is {a} under Airflow, {d} under Dagster")
    hooks_a, hooks_d = ours.hooks(), theirs.hooks()
    for hook, word in sorted(set(hooks_a) | set(hooks_d)):
        a, d = hooks_a[(hook, word)], hooks_d[(hook, word)]
        if a != d:
            lines.append(
                f"{step}: hook {hook!r} {word} {_count(a)} under Airflow, {d} under Dagster"
            )
    mats_a, mats_d = ours.materializations(), theirs.materializations()
    for asset, partition in sorted(set(mats_a) | set(mats_d), key=str):
        a, d = mats_a[(asset, partition)], mats_d[(asset, partition)]
        if a != d:
            where = f" partition {partition!r}" if partition else ""
            lines.append(
                f"{step}: asset {asset!r}{where} materialized {_count(a)} under Airflow, "
                f"{d} under Dagster"
            )
    checks_a, checks_d = ours.checks(), theirs.checks()
    for asset, check in sorted(set(checks_a) | set(checks_d), key=str):
        a = checks_a.get((asset, check), ["not evaluated"])
        d = checks_d.get((asset, check), ["not evaluated"])
        if a != d:
            lines.append(
                f"{step}: check {check!r} on asset {asset!r} {', '.join(a)} under Airflow, "
                f"{', '.join(d)} under Dagster"
            )
    return lines


def read_run(storage: FilesystemStorage, run_id: str) -> dict[str, tuple[dict, list]]:
    """step key -> (outputs by name, events of its event logs) for what a run left in storage."""
    found: dict[str, tuple[dict, list]] = {}
    for key in storage.list(run_id):
        step_key, _, name = key[len(run_id) + 1 :].partition("/")
        outputs, events = found.setdefault(step_key, ({}, []))
        # The event log, and the logs of earlier attempts however a storage names them.
        last = name.rsplit("/", 1)[-1]
        if last == EVENT_LOG_NAME or (last.startswith("events") and last.endswith(".jsonl")):
            for line in storage.get_bytes(key).decode().splitlines():
                event = StepEvent.from_line(line)
                if event is not None:
                    events.append(event)
        elif name == OUTPUTS_RECORD_NAME:
            continue  # the worker's record of what the step yielded, not an output
        elif "/" not in name:
            data = storage.get_bytes(key)
            try:
                outputs[name] = pickle.loads(data)
            except Exception:
                outputs[name] = Unreadable(len(data), data)
    return found


def _mapping_key(shown: str | None) -> str | None:
    """The mapping key a map index shows: "piece_3", "[piece_3]" or "op [piece_3]"."""
    if not shown:
        return None
    found = re.search(r"\[([^\[\]]+)\]\s*$", shown)
    return (found.group(1) if found else shown).strip()


def airflow_record(home, dag_id: str, airflow_run_id: str, storage, step_keys) -> RunRecord:
    """The Airflow run as step records: each task instance mapped to the Dagster step it ran.

    A task's id is its step key made safe (``task_id_for``); a mapped task stands for the steps
    ``op[key]`` of a dynamic output, one map index each, its key read from the map index's
    label; a mapped task over no keys (map index -1) stands for ``op[?]``.
    """
    from dagster_airflow.names import task_id_for

    run_id = dagster_run_id(dag_id, airflow_run_id)
    stored = read_run(storage, run_id)
    by_task: dict[str, str] = {}
    bases: dict[str, str] = {}
    for key in step_keys:
        mapped = _MAPPED_KEY.match(key)
        if mapped:
            bases[task_id_for(mapped["base"])] = mapped["base"]
        else:
            by_task[task_id_for(key)] = key
    steps: dict[str, StepRecord] = {}
    unmatched = []
    for ti in home.task_instances(dag_id, airflow_run_id):
        if ti.map_index < 0:
            key = by_task.get(ti.task_id)
            if key is None and ti.task_id in bases:
                key = f"{bases[ti.task_id]}[{UNRESOLVED}]"
        else:
            mapping_key = _mapping_key(ti.rendered_map_index)
            base = bases.get(ti.task_id, ti.task_id)
            key = f"{base}[{mapping_key}]" if mapping_key else None
        if key is None:
            label = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
            unmatched.append(label)
            continue
        outputs, events = stored.get(key, ({}, []))
        outcome = _AIRFLOW_OUTCOMES.get(ti.state or "", f"not run ({ti.state or 'no state'})")
        steps[key] = StepRecord(key, outcome, ti.try_number, outputs, tuple(events))
    return RunRecord("Airflow", steps, run_id, tuple(unmatched))


def dagster_record(location: CodeLocation, job_name: str, run_config, storage) -> RunRecord:
    """Dagster's own run of the job, in process with an ephemeral instance, its outputs written
    through the same IO manager as the worker's."""
    from dagster import DagsterInstance

    from dagster_airflow.job.code_location import load_job, resolve
    from dagster_airflow.job.compile import validation_error
    from dagster_airflow.job.dagster_compat import create_execution_plan
    from dagster_airflow.worker.event_details import event_details
    from dagster_airflow.worker.instance import without_fallback_console_logger
    from dagster_airflow.worker.io_manager import IntermediateIOManager, intermediate_io_manager

    job = load_job(resolve(location, job_name), job_name)
    io_manager = intermediate_io_manager(IntermediateIOManager(storage))
    job = job.with_top_level_resources({**job.resource_defs, "io_manager": io_manager})
    try:
        plan = create_execution_plan(job, run_config=dict(run_config))
    except Exception as exc:
        raise validation_error(exc, job_name, "the run config given to the comparison") from None
    # The events are read from the instance; Dagster's console copy of them is only noise.
    with DagsterInstance.ephemeral() as instance, without_fallback_console_logger():
        result = job.execute_in_process(
            run_config=dict(run_config), instance=instance, raise_on_error=False
        )
        entries = instance.all_logs(result.run_id)
    stored = read_run(storage, result.run_id)
    outcomes: dict[str, str] = {}
    attempts: Counter = Counter()
    events: dict[str, list[StepEvent]] = {}
    for entry in entries:
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        kind = event.event_type_value
        if kind in _DAGSTER_OUTCOMES:
            outcomes[event.step_key] = _DAGSTER_OUTCOMES[kind]
        if kind in ("STEP_START", "STEP_RESTARTED"):
            attempts[event.step_key] += 1
        events.setdefault(event.step_key, []).append(
            StepEvent(kind, event.message or "", step_key=event.step_key, **event_details(event))
        )
    steps: dict[str, StepRecord] = {}
    deps = plan.get_all_step_deps()
    for step in plan.get_all_steps_in_topo_order():
        keys = [step.key]
        mapped = _MAPPED_KEY.match(step.key)
        if mapped and mapped["key"] == UNRESOLVED:
            # The steps a dynamic output resolved to, or "op[?]" itself when it resolved to none.
            ran = {k for k in set(outcomes) | set(events) if k.startswith(f"{mapped['base']}[")}
            resolved = {f"{mapped['base']}[{k}]" for k in _mapping_keys(step.key, deps, steps)}
            keys = sorted(ran | resolved) or keys
        for key in keys:
            outcome = outcomes.get(key) or _not_executed(step, steps, deps)
            outputs, logged = stored.get(key, ({}, []))[0], tuple(events.get(key, ()))
            steps[key] = StepRecord(key, outcome, attempts[key], outputs, logged)
    return RunRecord("Dagster", steps, result.run_id)


def _upstream(step_key: str, deps, steps: Mapping[str, StepRecord]) -> list[StepRecord]:
    """The records of a step's upstream steps, each step "op[?]" as the steps it resolved to."""
    found = []
    for key in deps.get(step_key, ()):
        mapped = _MAPPED_KEY.match(key)
        prefix = f"{mapped['base']}[" if mapped and mapped["key"] == UNRESOLVED else None
        found += [s for k, s in steps.items() if k == key or (prefix and k.startswith(prefix))]
    return found


def _mapping_keys(step_key: str, deps, steps: Mapping[str, StepRecord]) -> set[str]:
    """The mapping keys a step "op[?]" maps over: those of the dynamic output upstream (its
    outputs "name[key]"), or of the mapped step before it in a chain."""
    keys = set()
    for record in _upstream(step_key, deps, steps):
        for name in (record.key, *record.outputs):
            mapped = _MAPPED_KEY.match(name)
            if mapped and mapped["key"] != UNRESOLVED:
                keys.add(mapped["key"])
    return keys


def _not_executed(step, steps: Mapping[str, StepRecord], deps) -> str:
    """Why Dagster did not execute a step: an upstream step failed, or (for "op[?]") the
    dynamic output it maps over yielded no keys."""
    upstream = [record.outcome for record in _upstream(step.key, deps, steps)]
    failed = any(outcome in (FAILURE, UPSTREAM_FAILED) for outcome in upstream)
    return SKIPPED if UNRESOLVED in step.key and not failed else UPSTREAM_FAILED


def _location_args(location: CodeLocation) -> list[str]:
    args = []
    for flag, value in (
        ("-f", location.python_file),
        ("-m", location.module_name),
        ("-w", location.workspace),
        ("-a", location.attribute),
        ("-d", location.working_directory),
        ("-l", location.location_name),
    ):
        if value:
            args += [flag, value]
    return args


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "dagster-airflow"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dagster_airflow"]


def compare_job(
    location: CodeLocation,
    job_name: str,
    run_config: Mapping[str, Any] | None = None,
    *,
    scaffold_options: Sequence[str] = (),
    airflow_home=None,
    work_dir: str | Path | None = None,
    dag_id: str | None = None,
    timeout: float = 900,
) -> Comparison:
    """Run the job through a real Airflow and through Dagster, and list how they differ.

    :param location: where the job is defined (``CodeLocation(python_file=...)`` and so on).
    :param run_config: the run config both runs get (the scaffold's ``-e`` file).
    :param scaffold_options: more ``dagster-airflow scaffold`` arguments, such as
        ``["--runner", "docker", "--runner-option", "image=my-image"]``; the comparison chooses
        the DAG id, the storage and the run config file itself.
    :param airflow_home: an ``AirflowHome`` to run in (default: a new one in ``work_dir``).
    :param work_dir: where the run config, storages and Airflow home go (default: a new
        temporary directory, kept so that a difference can be looked into).
    """
    import yaml

    from dagster_airflow.testing.airflow_home import AirflowHome

    taken = [o for o in scaffold_options if o.split("=", 1)[0] in _OWN_OPTIONS]
    if taken:
        raise ConfigurationError(
            f"scaffold option {taken[0]!r} is set by the comparison itself (the DAG id, a "
            "filesystem storage it can read, the run config); leave it out of scaffold_options."
        )
    run_config = dict(run_config or {})
    work = Path(work_dir or tempfile.mkdtemp(prefix="dagster-airflow-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    dag_id = dag_id or re.sub(r"[^\w.-]", "_", f"compare_{job_name}")
    config_file = work / f"{dag_id}.yml"
    config_file.write_text(yaml.safe_dump(run_config))
    storage_dir = {side: work / f"{side}-storage" for side in ("airflow", "dagster")}

    dagster = dagster_record(
        location, job_name, run_config, FilesystemStorage(str(storage_dir["dagster"]))
    )
    args = [
        *_cli(),
        "scaffold",
        job_name,
        *_location_args(location),
        "-e",
        str(config_file),
        "--dag-id",
        dag_id,
        *scaffold_options,
        "--storage",
        "filesystem",
        "--storage-option",
        f"base_dir={storage_dir['airflow']}",
    ]
    done = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        refusal = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        refused = (f"the scaffold refused the job: {refusal}",)
        return Comparison(job_name, refused, dagster=dagster, work_dir=str(work))
    home = airflow_home or AirflowHome(work / "airflow")
    dag_file = home.install(done.stdout, f"{dag_id}.py")
    result = home.dags_test(dag_id, dag_file=dag_file, timeout=timeout)
    if result.run_id is None:
        tail = "\n".join(result.output.splitlines()[-15:])
        return Comparison(
            job_name,
            (f"`airflow dags test {dag_id}` made no DAG run (exit {result.returncode}):\n{tail}",),
            dagster=dagster,
            airflow_output=result.output,
            work_dir=str(work),
        )
    airflow = airflow_record(
        home,
        dag_id,
        result.run_id,
        FilesystemStorage(str(storage_dir["airflow"])),
        dagster.steps,
    )
    found = tuple(differences(airflow, dagster))
    if not found and work_dir is None:
        # Nothing to look into: a directory of our own making goes (a difference keeps it).
        shutil.rmtree(work, ignore_errors=True)
    return Comparison(
        job_name,
        found,
        airflow=airflow,
        dagster=dagster,
        airflow_output=result.output,
        work_dir="" if not found and work_dir is None else str(work),
    )
