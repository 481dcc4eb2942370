"""What the storage holds for one run, as Dagster's known execution state (Dagster side).

Dagster's step-delegating executors hand each step a `KnownExecutionState`: which upstream
outputs are ready, and the mapping keys each dynamic output yielded. Here a step runs alone, so
the worker rebuilds that state from the storage: one listing of the run's keys, plus the small
record (`outputs.json`) each worker leaves beside its step's outputs, read only where the listing
cannot tell (the order of mapping keys, outputs that are not objects, whether a step skipped).
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

from dagster_airflow.errors import DagsterAirflowError, OutputNotFoundError
from dagster_airflow.step_result import SKIPPED, SUCCESS
from dagster_airflow.storage.base import OUTPUTS_RECORD_NAME, IntermediateStorage

_OUTPUT_KEY = re.compile(r"(\w+)(?:\[(\w+)\])?")


@attrs.frozen
class StepRecord:
    """How a step's last attempt ended, and what it yielded, in Dagster's order.

    ``outputs`` lists (output name, mapping key or None) as the step yielded them: Nothing
    outputs and outputs of other IO managers too, which leave no object in the storage.
    ``attempt`` is the Airflow try that wrote the record (None from workers before it).
    """

    status: str
    outputs: tuple[tuple[str, str | None], ...] = ()
    attempt: int | None = None

    def to_json(self) -> str:
        outputs = [list(o) for o in self.outputs]
        return json.dumps({"status": self.status, "outputs": outputs, "attempt": self.attempt})

    @classmethod
    def from_json(cls, text: str) -> StepRecord:
        data = json.loads(text)
        outputs = tuple((name, key) for name, key in data["outputs"])
        return cls(data["status"], outputs, data.get("attempt"))

    def mapping_keys(self, output_name: str) -> list[str]:
        return [key for name, key in self.outputs if name == output_name and key is not None]


def unresolved_key(step_key: str) -> str:
    """``op[piece_3]`` -> ``op[?]``: the step key of a mapped step as the unresolved plan has it."""
    return re.sub(r"\[\w+\]$", "[?]", step_key)


class RunState:
    """The storage's view of one run: a listing, and step records read as they are needed."""

    def __init__(self, storage: IntermediateStorage, run_id: str) -> None:
        self.storage = storage
        self.run_id = run_id
        self.objects: set[tuple[str, str, str | None]] = set()  # (step, output, mapping key)
        self.steps: set[str] = set()  # steps that left anything behind
        self._records: dict[str, StepRecord | None] = {}
        for key in storage.list(run_id):
            parts = key.split("/")
            if len(parts) != 3 or parts[0] != run_id:
                continue
            _, step_key, name = parts
            self.steps.add(step_key)
            match = _OUTPUT_KEY.fullmatch(name)
            if match:
                self.objects.add((step_key, match[1], match[2]))

    def uri(self, step_key: str, name: str) -> str:
        return self.storage.uri(self.storage.key(self.run_id, step_key, name))

    def record(self, step_key: str) -> StepRecord | None:
        if step_key not in self._records:
            record = None
            if step_key in self.steps:
                key = self.storage.key(self.run_id, step_key, OUTPUTS_RECORD_NAME)
                try:
                    record = StepRecord.from_json(self.storage.get_bytes(key).decode())
                except OutputNotFoundError:
                    record = None
            self._records[step_key] = record
        return self._records[step_key]

    def produced(self, handle) -> bool:
        """Whether an upstream output (a Dagster StepOutputHandle) is there for this run."""
        if (handle.step_key, handle.output_name, handle.mapping_key) in self.objects:
            return True
        record = self.record(handle.step_key)
        return record is not None and (handle.output_name, handle.mapping_key) in record.outputs

    def ready_outputs(self) -> set:
        from dagster_airflow.job.dagster_compat import StepOutputHandle

        return {StepOutputHandle(step, name, key) for step, name, key in self.objects}

    def was_skipped(self, step_key: str, plan, seen: frozenset[str] = frozenset()) -> bool:
        """Whether a step was skipped in this run: its worker said so, or it never ran because
        a step it depends on was skipped (Airflow skips such a task without starting it)."""
        record = self.record(step_key)
        if record is not None:
            return record.status == SKIPPED
        if step_key in seen or step_key not in plan.step_dict_by_key:
            return False
        step = plan.get_step_by_key(step_key)
        upstream = {h.step_key for i in step.step_inputs for h in _handles(i)}
        return any(self.was_skipped(u, plan, seen | {step_key}) for u in upstream)

    def dynamic_mappings(self, full_plan, step_key: str) -> dict[str, dict[str, list[str] | None]]:
        """The mapping keys of every dynamic output upstream of the step, as Dagster's executor
        records them: in yield order; None for an optional one that yielded nothing, or for the
        dynamic outputs of a step that was skipped."""
        deps = full_plan.get_all_step_deps()
        ancestors: set[str] = set()
        todo = list(deps.get(unresolved_key(step_key), ()))
        while todo:
            key = todo.pop()
            if key not in ancestors:
                ancestors.add(key)
                todo.extend(deps.get(key, ()))
        mappings: dict[str, dict[str, list[str] | None]] = {}
        for key in sorted(ancestors):
            step = full_plan.get_step_by_key(key)
            dynamic = [o for o in step.step_outputs if o.is_dynamic]
            if not dynamic or key.endswith("[?]"):
                continue
            record = self.record(key)
            if record is not None and record.status == SUCCESS:
                mappings[key] = {
                    o.name: record.mapping_keys(o.name) or (None if not o.is_required else [])
                    for o in dynamic
                }
            elif self.was_skipped(key, full_plan):
                mappings[key] = {o.name: None for o in dynamic}
        return mappings

    def check_resolvable(self, full_plan, step_key: str, mappings: dict) -> None:
        """Fail in one sentence when the step maps over, or collects, a dynamic output whose
        mapping keys this run does not have (its upstream task has not run), or when a mapped
        step's key is not one of them."""
        key = unresolved_key(step_key)
        if key not in full_plan.step_dict_by_key:
            return
        step = full_plan.get_step_by_key(key)
        for producer in sorted(getattr(step, "resolved_by_step_keys", ())):
            if producer not in mappings:
                raise DagsterAirflowError(
                    f"step {step_key!r} needs the mapping keys that step {producer!r} yields, "
                    f"which are not at {self.uri(producer, OUTPUTS_RECORD_NAME)!r}; run the "
                    "upstream task in this DAG run first."
                )
        if key != step_key:
            producer, output = step.resolved_by_step_key, step.resolved_by_output_name
            keys = mappings[producer][output] or []
            if step_key[len(key) - 2 : -1] not in keys:
                raise DagsterAirflowError(
                    f"step {step_key!r} is not a step of this run: output {output!r} of step "
                    f"{producer!r} yielded the mapping keys {keys!r}; clear the mapped task "
                    "together with its upstream task."
                )

    def missing_inputs(self, plan, step_key: str) -> tuple[str | None, set]:
        """What Dagster's executor would decide for the step's inputs, from what this run holds.

        Returns (why the step is skipped, or None) and the handles that are ready although they
        are no object in the storage (Nothing outputs, outputs of other IO managers). A required
        output that is missing, of a step that was not skipped, fails in one sentence.
        """
        from dagster_airflow.job.dagster_compat import FromMultipleSources

        step = plan.get_step_by_key(step_key)
        extra: set = set()
        for step_input in step.step_inputs:
            gating = [
                h
                for h in _handles(step_input)
                # Asset check results never gate a step on their absence (as in Dagster).
                if plan.get_step_output(h).properties.asset_check_key is None
            ]
            missing = []
            for handle in gating:
                if (handle.step_key, handle.output_name, handle.mapping_key) in self.objects:
                    continue
                if self.produced(handle):
                    extra.add(handle)
                    continue
                output = plan.get_step_output(handle)
                if output.is_required and not self.was_skipped(handle.step_key, plan):
                    name = _object_name(handle)
                    raise DagsterAirflowError(
                        f"input {step_input.name!r} of step {step_key!r} needs output "
                        f"{name!r} of step {handle.step_key!r}, which is not at "
                        f"{self.uri(handle.step_key, name)!r}; run the upstream task in this "
                        "DAG run first."
                    )
                missing.append(handle)
            # A fan-in skips only when none of its sources was produced; any other input
            # skips when its source is missing (Dagster's ActiveExecution._should_skip_step).
            fan_in = isinstance(step_input.source, FromMultipleSources)
            if missing and (not fan_in or len(missing) == len(gating)):
                return _skip_reason(self, step_input.name, missing, fan_in, plan), extra
        return None, extra


def _handles(step_input) -> list[Any]:
    return list(step_input.get_step_output_handle_dependencies())


def _object_name(handle) -> str:
    return (
        f"{handle.output_name}[{handle.mapping_key}]" if handle.mapping_key else handle.output_name
    )


def _skip_reason(state: RunState, input_name: str, missing: list, fan_in: bool, plan) -> str:
    if fan_in:
        return f"none of the {len(missing)} sources of fan-in input {input_name!r} was produced."
    handle = missing[0]
    if state.was_skipped(handle.step_key, plan):
        return f"upstream step {handle.step_key!r} was skipped (input {input_name!r})."
    return (
        f"upstream step {handle.step_key!r} did not produce its optional output "
        f"{_object_name(handle)!r} (input {input_name!r})."
    )
