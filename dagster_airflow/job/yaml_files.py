"""The YAML a user hands the scaffold (run config files, workspace files, option values), read
with bounds: UTF-8 text of at most MAX_BYTES, no key given twice in one mapping (YAML keeps the
last silently), aliases expanding to at most MAX_VALUES values (a few lines of anchors can
otherwise stand for billions), no value containing itself, and no nesting deeper than Python
reads. Each refusal is one sentence, raised as the caller's error class.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from dagster_airflow.errors import ConfigurationError, DagsterAirflowError

MAX_BYTES = 1024 * 1024
MAX_VALUES = 100_000
_MERGE = "tag:yaml.org,2002:merge"


class _DuplicateKey(Exception):
    def __init__(self, key: Any, mark: Any) -> None:
        super().__init__(key)
        self.key = key
        self.mark = mark


@functools.cache
def _loader() -> type:
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen: set[Any] = set()
                for key_node, _ in node.value:
                    if key_node.tag == _MERGE:
                        continue  # `<<: *base`: keys given after it override it, as YAML says
                    key = self.construct_object(key_node, deep=True)
                    if isinstance(key, list | dict):
                        continue  # unhashable: the constructor refuses it in its own words
                    if key in seen:
                        raise _DuplicateKey(key, key_node.start_mark)
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return BoundedLoader


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _count(node: Any, counted: dict[int, int], open_nodes: set[int]) -> int:
    """How many values ``node`` stands for once its aliases are expanded."""
    import yaml

    if id(node) in counted:
        return counted[id(node)]
    if id(node) in open_nodes:
        raise _SelfReference(node.start_mark)
    open_nodes.add(id(node))
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_count(item, counted, open_nodes) for item in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(
            _count(k, counted, open_nodes) + _count(v, counted, open_nodes) for k, v in node.value
        )
    open_nodes.discard(id(node))
    counted[id(node)] = total
    if total > MAX_VALUES:
        raise _TooMany()
    return total


class _SelfReference(Exception):
    def __init__(self, mark: Any) -> None:
        super().__init__(mark)
        self.mark = mark


class _TooMany(Exception):
    pass


def load_yaml(text: str, what: str, error: type[DagsterAirflowError] = ConfigurationError) -> Any:
    """``yaml.safe_load(text)`` within the bounds. ``what`` names the text in a refusal
    ("run config file 'a.yml'"). A syntax error is raised as yaml.YAMLError, for the caller's
    own sentence."""
    loader = _loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _count(node, {}, set())
        return loader.construct_document(node)
    except _DuplicateKey as exc:
        raise error(
            f"{what} gives the key {exc.key!r} twice in one mapping ({_where(exc.mark)}), and "
            "YAML would keep only the last; merge the two into one."
        ) from None
    except _TooMany:
        raise error(
            f"{what} stands for more than {MAX_VALUES} values once its aliases (*name) are "
            "expanded; write it with fewer aliases."
        ) from None
    except _SelfReference as exc:
        raise error(
            f"{what} has a value that contains itself through an alias ({_where(exc.mark)}); "
            "remove that alias."
        ) from None
    except RecursionError:
        raise error(f"{what} nests more deeply than can be read; flatten it.") from None
    finally:
        loader.dispose()


def read_text(path: str | Path, what: str, error: type[DagsterAirflowError]) -> str:
    """A YAML file's text: at most MAX_BYTES of UTF-8 (a BOM allowed). OSError is the
    caller's to word."""
    with open(path, "rb") as stream:
        data = stream.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise error(
            f"{what} is larger than {MAX_BYTES // 1024} KiB, more than a DAG file should carry "
            "in every parse; keep bulk data in a file or a storage the op reads."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(
            f"{what} is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}); "
            "save it as UTF-8."
        ) from None
