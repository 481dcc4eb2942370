"""`dagster-airflow plugins`: the runners and storages installed, and plugins that failed."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def add_parser(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser(
        "plugins",
        help="list the installed runners and storages, and plugins that failed to load",
        description="List every runner and storage with the distribution that provides it, and "
        "every plugin that failed to load with its error (exit status 1 when one did).",
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=run)


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import json

    from dagster_airflow.plugins.manager import plugin_listing

    rows, failures = plugin_listing()
    if args.json:
        failed = [
            {"plugin": f.plugin, "distribution": f.distribution, "error": f.error} for f in failures
        ]
        print(json.dumps({"backends": rows, "failed": failed}, indent=2))
    else:
        for kind, title in (("runner", "Runners"), ("storage", "Storages")):
            print(f"{title}:")
            for row in (r for r in rows if r["kind"] == kind):
                provider = (
                    f"{row['distribution']} {row['version']}"
                    if row["version"]
                    else (f"registered in code by {row['plugin']!r}")
                )
                print(f"  {row['name']:<12} {provider:<28} {row['class']}")
        if failures:
            print("Plugins that failed to load:")
            for failure in failures:
                print(
                    f"  {failure.plugin} ({failure.distribution or 'no distribution'}): "
                    f"{failure.error}"
                )
    return 1 if failures else 0
