"""Keys stay inside their storage: every way a run id or a key comes in is checked."""

import json
import os

import dagster as dg
import pytest

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.keys import check_key, check_run_id
from dagster_airflow.model import RUN_ID_TAG, CodeLocation, StepRequest, StorageSpec
from dagster_airflow.storage.filesystem import FilesystemStorage
from dagster_airflow.worker.io_manager import intermediate_io_manager_from_config
from tests.conftest import JOBS, run_cli

ESCAPE = "../escaped_run"
RUN_ID = "3f2b1c4d-5e6f-5a7b-8c9d-0e1f2a3b4c5d"


def request_json(tmp_path, run_id: str) -> str:
    data = json.loads(
        StepRequest(
            code_location=CodeLocation(python_file=str(JOBS / "trouble.py")),
            job_name="trouble",
            step_key="produce",
            run_id=RUN_ID,
            storage=StorageSpec("filesystem", {"base_dir": str(tmp_path / "base")}),
        ).to_json()
    )
    data["run_id"] = run_id
    return json.dumps(data)


@pytest.mark.parametrize(
    "run_id", [ESCAPE, "", "3F2B1C4D-5E6F-5A7B-8C9D-0E1F2A3B4C5D", "not-a-uuid", 7]
)
def test_a_step_request_whose_run_id_is_not_a_uuid_is_refused(tmp_path, run_id):
    with pytest.raises(ConfigurationError) as caught:
        StepRequest.from_json(request_json(tmp_path, run_id))
    assert f"the run id {run_id!r} from the step request is not a UUID" in str(caught.value)


def test_a_request_file_with_an_escaping_run_id_writes_nothing(tmp_path):
    request_file = tmp_path / "request.json"
    request_file.write_text(request_json(tmp_path, ESCAPE))
    done = run_cli("execute-step", "--request-file", str(request_file))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"the run id {ESCAPE!r} from the step request is not a UUID" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["request.json"]


def test_a_dagster_run_tag_with_an_escaping_run_id_writes_nothing(tmp_path):
    """The graphql runner's IO manager keys outputs by the run's tag; anyone who can launch a
    run in the Dagster UI can set it."""

    @dg.op
    def produce() -> int:
        return 1

    @dg.job(
        resource_defs={
            "io_manager": intermediate_io_manager_from_config.configured(
                {"storage": {"name": "filesystem", "base_dir": str(tmp_path / "base")}}
            )
        }
    )
    def tagged():
        produce()

    result = tagged.execute_in_process(tags={RUN_ID_TAG: ESCAPE}, raise_on_error=False)
    assert not result.success
    text = "\n".join(str(e.event_specific_data) for e in result.all_events if e.is_failure)
    assert f"the run id {ESCAPE!r} from the Dagster run's tag {RUN_ID_TAG!r}" in text
    assert list(tmp_path.iterdir()) == []


def test_a_symlink_out_of_base_dir_is_refused(tmp_path):
    base, outside = tmp_path / "base", tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    os.symlink(outside, base / RUN_ID)
    storage = FilesystemStorage(base_dir=str(base))
    with pytest.raises(ConfigurationError, match="outside the filesystem storage's base_dir"):
        storage.put_bytes(storage.key(RUN_ID, "step", "result"), b"x")
    assert list(outside.iterdir()) == []


def test_a_base_dir_that_is_itself_a_symlink_works(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    storage = FilesystemStorage(base_dir=str(tmp_path / "link"))
    storage.put_bytes(storage.key(RUN_ID, "step", "result"), b"x")
    assert (real / RUN_ID / "step" / "result").read_bytes() == b"x"


def test_check_helpers():
    assert check_run_id(RUN_ID, "here") == RUN_ID
    assert check_key(f"{RUN_ID}/step/out[a_1]") == f"{RUN_ID}/step/out[a_1]"
    with pytest.raises(ConfigurationError, match=r"the storage key 'a/\.\./b' has an empty"):
        check_key("a/../b")
