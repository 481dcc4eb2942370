"""The code location's flags (-f, -m, -w, -a, -d, -l) are one declaration: every command that
takes them reads them alike, helps alike and refuses two locations in the same words."""

from __future__ import annotations

import pytest

from dagster_airflow.cli import build_parser, main

COMMANDS = ("scaffold", "check", "compare")
FLAGS = ("-f", "-m", "-w", "-a", "-d", "-l")


def _location_actions(command: str) -> dict[str, tuple[tuple[str, ...], str, str | None]]:
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    parser = subparsers.choices[command]
    return {
        flag: (tuple(action.option_strings), action.dest, action.help)
        for action in parser._actions
        for flag in FLAGS
        if flag in action.option_strings
    }


def test_every_command_declares_the_location_flags_alike():
    declared = {command: _location_actions(command) for command in COMMANDS}
    assert sorted(declared["scaffold"]) == sorted(FLAGS)
    assert declared["check"] == declared["scaffold"]
    assert declared["compare"] == declared["scaffold"]
    assert declared["scaffold"]["-f"] == (
        ("-f", "--python-file"),
        "python_file",
        "the Python file that defines the job",
    )


@pytest.mark.parametrize("command", ["scaffold my_job", "check", "compare my_job"])
def test_two_code_locations_are_refused_in_the_same_words(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command.split(), "-f", "defs.py", "-m", "defs"])
    assert exit_.value.code == 2
    assert "argument -m/--module-name: not allowed with argument -f/--python-file" in (
        capsys.readouterr().err
    )


def test_a_missing_code_location_file_is_one_sentence_for_scaffold_and_check(tmp_path, capsys):
    missing = str(tmp_path / "nowhere.py")
    assert main(["scaffold", "my_job", "-f", missing]) == 2
    assert main(["check", str(tmp_path), "-f", missing]) == 2
    scaffold_err, check_err = capsys.readouterr().err.strip().splitlines()
    sentence = f"code location file {missing!r} does not exist; check the -f path."
    assert scaffold_err == f"dagster-airflow scaffold: {sentence}"
    assert check_err == f"dagster-airflow check: {sentence}"
