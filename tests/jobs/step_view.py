"""An asset job for the step view: a partitioned materialization with an output's metadata and
an asset check, an output whose unpickling leaves a mark, and a step that fails with a cause."""

from pathlib import Path

import dagster as dg

regions = dg.StaticPartitionsDefinition(["north", "south"])


class TrapConfig(dg.Config):
    marker: str


class Trap:
    """Unpickling one writes its marker file: whoever unpickles it leaves a trace."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.rows = list(range(500))

    def __repr__(self) -> str:
        return f"Trap(rows={len(self.rows)})"

    def __setstate__(self, state: dict) -> None:
        Path(state["marker"]).write_text("unpickled")
        self.__dict__.update(state)


@dg.asset(
    partitions_def=regions,
    check_specs=[dg.AssetCheckSpec("not_empty", asset="words")],
)
def words(context: dg.AssetExecutionContext):
    context.log.info(f"counting the words of {context.partition_key}")
    values = [f"{context.partition_key}-{i}" for i in range(100)]
    yield dg.Output(values, metadata={"count": len(values)})
    yield dg.AssetCheckResult(check_name="not_empty", passed=bool(values), metadata={"min": 1})


@dg.asset(partitions_def=regions)
def trap(config: TrapConfig, words: list[str]) -> Trap:
    return Trap(config.marker)


@dg.asset(partitions_def=regions)
def broken(words: list[str]) -> int:
    try:
        return {}["column_x"]
    except KeyError as exc:
        raise RuntimeError(f"could not parse {len(words)} words") from exc


view_job = dg.define_asset_job(
    "view_job", selection=dg.AssetSelection.all(), partitions_def=regions
)

defs = dg.Definitions(assets=[words, trap, broken], jobs=[view_job])
