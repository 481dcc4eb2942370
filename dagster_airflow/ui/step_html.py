"""The step view's HTML: one self-contained page (inline style, no script).

Airflow shows a plugin's view in a sandboxed iframe that runs no script and, for requests the
page would make itself, sends no session: so the page asks for nothing more, and every value in
it is escaped.
"""

from __future__ import annotations

import datetime
import json
from html import escape
from typing import Any
from urllib.parse import urlencode

from dagster_airflow.files import human_size
from dagster_airflow.step_log import describe
from dagster_airflow.step_result import StepError, StepEvent
from dagster_airflow.ui.step_page import StepPage, StoredOutput

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 16px; color: #1e1b4b; }
h1 { font-size: 18px; margin: 0 0 4px; } h2 { font-size: 15px; margin: 20px 0 8px; }
.meta { color: #555; margin: 0 0 8px; } .meta code { color: #1e1b4b; }
table { border-collapse: collapse; width: 100%; }
td, th { text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid #eee; }
th { font-weight: 600; color: #555; }
.time { white-space: nowrap; color: #555; font-family: ui-monospace, monospace; }
.level { font-size: 11px; font-weight: 600; padding: 1px 6px; border-radius: 8px;
  background: #e0e7ff; }
.level-ERROR, .level-CRITICAL { background: #fee2e2; color: #991b1b; }
.level-WARNING { background: #fef3c7; color: #92400e; } .level-DEBUG { background: #f3f4f6; }
.kind { font-family: ui-monospace, monospace; font-size: 12px; white-space: nowrap; }
pre { background: #f8fafc; border: 1px solid #e5e7eb; padding: 8px; margin: 4px 0;
  white-space: pre-wrap; word-break: break-word; font-size: 12px; }
.error { border-left: 4px solid #dc2626; background: #fef2f2; padding: 8px 12px; }
.cause { margin: 6px 0 0 16px; }
.output { border: 1px solid #e5e7eb; border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
.problem { border-left: 4px solid #d97706; background: #fffbeb; padding: 8px 12px; }
.passed { color: #166534; } .failed { color: #991b1b; }
nav a { margin-right: 8px; }
"""


def _time(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%H:%M:%S.%f")[:-3]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _event_detail(event: StepEvent) -> str:
    """The line describing the event, with what a timeline reader looks for set apart."""
    text = escape(describe(event).splitlines()[0])
    extra = []
    if event.event_type == "ASSET_MATERIALIZATION" and event.partition:
        extra.append(
            f'<span data-testid="dagster-partition">partition {escape(event.partition)}</span>'
        )
    if event.event_type == "ASSET_CHECK_EVALUATION" and event.check_name:
        outcome = "passed" if event.passed else "failed"
        extra.append(f'<span class="{outcome}" data-testid="dagster-check">check {outcome}</span>')
    return text + "".join(f" &middot; {e}" for e in extra)


def _timeline(events: tuple[StepEvent, ...]) -> str:
    rows = []
    for event in events:
        rows.append(
            f'<tr data-testid="dagster-event" data-event-type="{escape(event.event_type)}">'
            f'<td class="time">{_time(event.timestamp)}</td>'
            f'<td><span class="level level-{escape(event.level)}">{escape(event.level)}</span></td>'
            f'<td class="kind">{escape(event.event_type)}</td>'
            f"<td>{_event_detail(event)}</td></tr>"
        )
    return (
        '<table data-testid="dagster-timeline"><thead><tr><th>Time (UTC)</th><th>Level</th>'
        "<th>Event</th><th>What happened</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _error(error: StepError) -> str:
    causes = []
    cause = error.cause
    while cause is not None:
        causes.append(
            f'<div class="cause" data-testid="dagster-error-cause">caused by '
            f"<b>{escape(cause.class_name)}</b>: {escape(cause.message)}"
            + (f"<pre>{escape(cause.stack.rstrip())}</pre>" if cause.stack else "")
            + "</div>"
        )
        cause = cause.cause
    return (
        '<div class="error" data-testid="dagster-error">'
        f"<b>{escape(error.class_name)}</b>: {escape(error.message)}" + "".join(causes) + "</div>"
    )


def _output(output: StoredOutput) -> str:
    facts = [
        f"<b>{escape(output.name)}</b>",
        f"<code>{escape(output.type_name)}</code>" if output.type_name else "",
        human_size(output.size) if output.size is not None else "",
    ]
    preview = (
        escape(output.preview)
        if output.preview is not None
        else "(no preview: the worker that stored it recorded none)"
    )
    metadata = (
        f"<div>metadata: <code>{escape(_json(output.metadata))}</code></div>"
        if output.metadata
        else ""
    )
    return (
        '<div class="output" data-testid="dagster-output">'
        + " &middot; ".join(f for f in facts if f)
        + f'<div>URI: <code data-testid="dagster-output-uri">{escape(output.uri or "")}</code>'
        + "</div>"
        + metadata
        + f'<pre data-testid="dagster-output-preview">{preview}</pre></div>'
    )


def _tries(page: StepPage) -> str:
    if page.tries <= 1:
        return ""
    links = []
    for number in range(1, page.tries + 1):
        query = urlencode({"map_index": page.map_index, "try_number": number})
        label = f"try {number}"
        links.append(
            f"<b>{label}</b>"
            if number == page.try_number
            else f'<a href="?{escape(query)}">{label}</a>'
        )
    return "<nav>" + "".join(links) + "</nav>"


def render(page: StepPage) -> str:
    """The whole HTML page of one try of a task."""
    where = f"DAG <code>{escape(page.dag_id)}</code>, run <code>{escape(page.run_id)}</code>"
    if page.map_index >= 0:
        where += f", map index {page.map_index}"
    step = escape(page.step_key or page.task_id)
    parts = [
        f"<h1>Dagster step <code>{step}</code></h1>",
        f'<p class="meta">{where}; try {page.try_number} of {page.tries}, '
        f"<b>{escape(page.state or 'no state')}</b>. Dagster run "
        f"<code>{escape(page.dagster_run_id)}</code>, storage "
        f"<code>{escape(page.storage_name)}</code>.</p>",
        _tries(page),
    ]
    if page.dagster_run_url:
        parts.append(
            f'<p>Ran in Dagster: <a data-testid="dagster-run-link" '
            f'href="{escape(page.dagster_run_url)}">{escape(page.dagster_run_url)}</a></p>'
        )
    if page.problem:
        parts.append(f'<p class="problem" data-testid="dagster-problem">{escape(page.problem)}</p>')
    if page.error is not None:
        parts += ["<h2>Error</h2>", _error(page.error)]
    parts.append("<h2>Outputs</h2>")
    if page.outputs:
        parts += [_output(o) for o in page.outputs]
    else:
        parts.append("<p>No output stored in this try.</p>")
    parts.append("<h2>Events</h2>")
    if page.event_log_uri:
        parts.append(f'<p class="meta">From <code>{escape(page.event_log_uri)}</code></p>')
    if page.events:
        parts.append(_timeline(page.events))
    elif page.dagster_run_url:
        parts.append("<p>The step's events are in its Dagster run (link above).</p>")
    else:
        where = f" under <code>{escape(page.run_uri)}</code>" if page.run_uri else ""
        parts.append(
            f"<p>No event of this try in the storage{where}: the step has not run yet, its "
            "worker stopped before writing its event log (see the task's log), or this "
            "api-server does not see that storage (a filesystem storage must have the same path "
            "here as where the steps run).</p>"
        )
    body = "\n".join(p for p in parts if p)
    title = escape(f"Dagster step {page.step_key or page.task_id}")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )
