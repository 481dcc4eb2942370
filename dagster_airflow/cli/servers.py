"""`dagster-airflow servers`: this user's step servers, listed or --stop-ped."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dagster_airflow.errors import EXIT_USAGE, ConfigurationError
from dagster_airflow.model import CodeLocation


def add_parser(commands: argparse._SubParsersAction) -> None:
    servers = commands.add_parser(
        "servers",
        help="list the running step servers of this user; --stop stops them",
        description="List the step servers the subprocess runner started on this machine for "
        "this user (pid, steps forked, idle time, memory, code location), or stop them. Steps "
        "still running finish on their own.",
    )
    servers.add_argument(
        "--stop",
        action="store_true",
        help="stop every listed server (a pid only once proven to be that server)",
    )
    servers.add_argument(
        "--runtime-dir",
        help="where the servers listen (default: $DAGSTER_AIRFLOW_RUNTIME_DIR, "
        "$XDG_RUNTIME_DIR/dagster-airflow or /tmp/dagster-airflow-UID)",
    )
    servers.set_defaults(handler=run)


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import time

    from dagster_airflow.step_server.protocol import memory_kib, running_servers, runtime_dir

    directory = runtime_dir(args.runtime_dir)
    try:
        found = running_servers(directory)  # refused when another user could write there
    except OSError as exc:
        raise ConfigurationError(
            f"{exc.strerror}; pass --runtime-dir the folder the step servers listen in."
        ) from None
    # A pid in an info file is only a claim: act on a process proven to be that file's server.
    checked = [(server, server.unverified()) for server in found]
    servers = [server for server, problem in checked if not problem]
    for server, problem in checked:
        if problem:
            print(
                f"dagster-airflow servers: {'not stopping' if args.stop else 'ignoring'} "
                f"process {server.pid}, which {str(server.files.info)!r} names: {problem}, so "
                "it is not provably a step server of this directory; remove that file if no "
                "step server of yours wrote it.",
                file=sys.stderr,
            )
    refused = EXIT_USAGE if args.stop and len(servers) < len(found) else 0
    if not servers:
        print(f"no step servers in {directory}")
        return refused
    if args.stop:
        for server in servers:
            where = CodeLocation.from_dict(server.info["code_location"]).describe()
            gone = server.stop()
            print(f"{'stopped' if gone else 'could not stop'} {server.pid} ({where})")
        return refused
    print(f"{'PID':>8} {'STEPS':>6} {'IDLE':>7} {'UPTIME':>8} {'RSS':>9}  CODE LOCATION  (PYTHON)")
    for server in servers:
        status = server.status()
        rss = memory_kib(server.pid).get("rss", 0) / 1024
        uptime = time.time() - server.info.get("started", time.time())
        idle = f"{status['idle_seconds']:.0f} s" if "idle_seconds" in status else "busy"
        where = CodeLocation.from_dict(server.info["code_location"]).describe()
        print(
            f"{server.pid:>8} {status.get('steps', '?'):>6} {idle:>7} {uptime:>6.0f} s "
            f"{rss:>5.0f} MiB  {where}  ({server.info.get('python')})"
        )
    return 0
