"""Typed, validated backend options: each backend's option set is a frozen attrs class.

A backend declares its options once, as fields made by an ``OptionFields`` of its own::

    _field = OptionFields("the subprocess runner")

    @attrs.frozen
    class SubprocessOptions:
        python: str | None = _field.string("python", default=None)
        kill_timeout: float = _field.number("kill_timeout", default=10.0, example="30")

Each field converts and checks its value when the class is built, and a wrong one is one
sentence naming the option, showing the value and saying the fix::

    the subprocess runner's option 'kill_timeout' must be a number of seconds above 0, got
    'soon'; write it as kill_timeout=30.

A backend declares that class once, as ``options_class`` of a ``Configured`` backend: the plugin
manager checks the DAG's settings against its attrs fields (an unknown or a missing option is
one sentence), builds it, and hands it to the backend, which reads each option as an attribute
(``self.kill_timeout``) or from ``self.options``. The scaffold builds the backend (which connects
to nothing) before it writes a DAG file, so wrong values never reach a task.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import attrs

from dagster_airflow.errors import ConfigurationError

_REQUIRED = attrs.NOTHING
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HTTP_URL = re.compile(r"https?://[^/\s]+")


class OptionFields:
    """Field makers for one backend, whose name (``"the docker runner"``) starts each message."""

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def error(self, option: str, value: Any, expected: str, fix: str) -> ConfigurationError:
        return ConfigurationError(
            f"{self.backend}'s option {option!r} must be {expected}, got {value!r}; {fix}."
        )

    @staticmethod
    def field(check: Callable[[Any], Any], default: Any = _REQUIRED) -> Any:
        """A field whose value (the default too) goes through ``check``, which converts it or
        raises the option's sentence."""
        return attrs.field(default=default, converter=check)

    # -- the kinds of value --------------------------------------------------------------------

    def string(
        self,
        option: str,
        default: Any = _REQUIRED,
        example: str = "...",
        check: Callable[[str], str | None] | None = None,
        expected: str = "a non-empty string",
        optional: bool = False,
    ) -> Any:
        """A string (None allowed when ``optional`` or the default is None). ``check`` returns
        a problem's fix, or None when the string is fine."""

        def convert(value: Any) -> Any:
            if value is None and (optional or default is None):
                return None
            if not isinstance(value, str) or not value.strip():
                raise self.error(option, value, expected, f"write it as {option}={example}")
            if check is not None and (fix := check(value)):
                raise self.error(option, value, expected, fix)
            return value

        return self.field(convert, default)

    def url(self, option: str, fix: str, default: Any = _REQUIRED, example: str = "...") -> Any:
        """An http(s) address; ``fix`` says what to write instead of another string."""

        def check(value: str) -> str | None:
            return None if _HTTP_URL.match(value) else fix

        return self.string(option, default, example, check, expected="an http(s) address")

    def number(
        self,
        option: str,
        default: Any = _REQUIRED,
        example: str = "10",
        minimum: float = 0.0,
        inclusive: bool = False,
        integer: bool = False,
        optional: bool = False,
    ) -> Any:
        """A number of seconds above ``minimum`` (or at it, ``inclusive``); None allowed when
        ``optional`` or the default is None. Booleans and strings are refused, not converted."""
        kind = "a whole number of seconds" if integer else "a number of seconds"
        expected = f"{kind} {'of at least' if inclusive else 'above'} {minimum:g}"

        def convert(value: Any) -> Any:
            if value is None and (optional or default is None):
                return None
            ok = isinstance(value, int) if integer else isinstance(value, int | float)
            if (
                isinstance(value, bool)
                or not ok
                or value < minimum
                or (value == minimum and not inclusive)
            ):
                raise self.error(option, value, expected, f"write it as {option}={example}")
            return int(value) if integer else float(value)

        return self.field(convert, default)

    def one_of(self, option: str, choices: Sequence[str], default: Any = _REQUIRED) -> Any:
        expected = f"one of {', '.join(choices)}"

        def convert(value: Any) -> Any:
            if value is None and default is None:
                return None
            if value in choices:
                return value
            close = [c for c in choices if isinstance(value, str) and c.lower() == value.lower()]
            fix = f"write {option}={close[0]}" if close else f"write it as {option}={choices[0]}"
            raise self.error(option, value, expected, fix)

        return self.field(convert, default)

    def string_map(self, option: str, example: str = "{NAME: value}") -> Any:
        """A mapping of environment variable names to values (values become strings)."""

        def convert(value: Any) -> dict[str, str]:
            if value is None:
                return {}
            if not isinstance(value, Mapping) or not all(isinstance(k, str) and k for k in value):
                raise self.error(
                    option,
                    value,
                    "a mapping of variable names to values",
                    f"write it as {option}='{example}'",
                )
            return {k: "" if v is None else str(v) for k, v in value.items()}

        return self.field(convert, None)

    def env_map(self, option: str, example: str = "{NAME: value}") -> Any:
        """Environment variables: a ``string_map`` whose names are POSIX names (letters,
        digits and '_', not starting with a digit) and whose values hold no NUL, which no
        process environment can carry."""
        as_map = self.string_map(option, example).converter

        def convert(value: Any) -> dict[str, str]:
            env = as_map(value)
            for name, text in env.items():
                if not _ENV_NAME.fullmatch(name):
                    raise ConfigurationError(
                        f"{self.backend}'s option {option!r} has the variable name {name!r}, "
                        "which is not an environment variable name; use letters, digits and "
                        "'_', not starting with a digit, such as MY_SETTING."
                    )
                if "\0" in text:
                    raise ConfigurationError(
                        f"{self.backend}'s option {option!r} gives {name} the value {text!r}, "
                        "which holds a NUL character that no environment can carry; remove it."
                    )
            return env

        return self.field(convert, None)

    def string_list(self, option: str, example: str) -> Any:
        """A non-empty list of strings, or None."""

        def convert(value: Any) -> list[str] | None:
            if value is None:
                return None
            if (
                isinstance(value, str)
                or not isinstance(value, Sequence)
                or not value
                or not all(isinstance(part, str) for part in value)
            ):
                raise self.error(
                    option, value, "a list of strings", f"write it as {option}='{example}'"
                )
            return list(value)

        return self.field(convert, None)

    def items(
        self,
        option: str,
        parse: Callable[[Any], Any],
        expected: str,
        example: str,
    ) -> Any:
        """A list whose every item goes through ``parse`` (which raises its own sentence)."""

        def convert(value: Any) -> list[Any]:
            if value is None:
                return []
            if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
                raise self.error(option, value, expected, f"write it as {option}='{example}'")
            return [parse(item) for item in value]

        return self.field(convert, None)

    def mapping(self, option: str, example: str) -> Any:
        """A mapping, or None."""

        def convert(value: Any) -> dict[str, Any] | None:
            if value is None:
                return None
            if not isinstance(value, Mapping):
                raise self.error(option, value, "a mapping", f"write it as {option}='{example}'")
            return dict(value)

        return self.field(convert, None)

    def any(self, option: str, default: Any = None) -> Any:
        return self.field(lambda value: value, default)


def check_prefix(fields: OptionFields, prefix: Any) -> None:
    """A storage's key prefix: a string (or None) that cannot lead outside the bucket."""
    from dagster_airflow.keys import check_key

    if prefix is None or prefix == "":
        return
    if not isinstance(prefix, str):
        raise fields.error("prefix", prefix, "a key prefix", "write it as prefix=dagster-airflow")
    try:
        check_key(prefix.strip("/"))
    except ConfigurationError:
        raise fields.error(
            "prefix",
            prefix,
            "a key prefix with no empty, '.' or '..' part",
            "write it as prefix=dagster-airflow",
        ) from None


class Configured:
    """A backend whose options are its attrs class ``options_class``, declared once.

    Built from that class's instance (what the plugin manager hands it) or from its fields as
    keyword arguments (a test, a script); ``configure`` then sets what derives from them. Each
    option reads as an attribute of the backend; an attribute the backend sets itself (a
    derived value) takes precedence.
    """

    options_class: ClassVar[type]
    options: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        given = args[0] if len(args) == 1 and not kwargs else None
        if isinstance(given, self.options_class):
            self.options = given
        else:
            self.options = self.options_class(*args, **kwargs)
        self.configure()

    def configure(self) -> None:
        """Set what derives from the options (a client not made yet, a lifecycle's numbers)."""

    def __getattr__(self, name: str) -> Any:
        # Only called for what the instance and its class lack: the options' own fields.
        options = self.__dict__.get("options")
        if options is not None and name in attrs.fields_dict(type(options)):
            return getattr(options, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def declared_options(cls: type) -> type | None:
    """The attrs options class a backend declares, when the backend is built from it (its
    ``__init__`` is ``Configured``'s); None for a backend that takes keyword arguments."""
    options_class = getattr(cls, "options_class", None)
    if options_class is None or not attrs.has(options_class):
        return None
    return options_class if cls.__init__ is Configured.__init__ else None


def option_names(options_class: type) -> dict[str, bool]:
    """Each option's name, and whether it is required (has no default)."""
    return {
        field.alias or field.name: field.default is attrs.NOTHING
        for field in attrs.fields(options_class)
    }
