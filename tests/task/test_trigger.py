"""The trigger's wait before it fires: kept out of Airflow 3.3's race between a deferral's
executor report and the resumed try (apache/airflow#72716), which only a scheduler can lose."""

from airflow.sdk.execution_time import supervisor

from dagster_airflow.task.trigger import MIN_DEFERRED_SECONDS, seconds_before_firing


def test_in_a_triggerer_a_step_that_ended_at_once_fires_after_the_floor():
    assert seconds_before_firing(100.0, 101.0) == MIN_DEFERRED_SECONDS - 1.0


def test_in_a_triggerer_a_step_longer_than_the_floor_fires_at_once():
    assert seconds_before_firing(100.0, 100.0 + MIN_DEFERRED_SECONDS + 5.0) == 0.0


def test_under_airflow_dags_test_the_trigger_fires_at_once():
    # `airflow dags test` runs the trigger in its own process with these comms (no scheduler).
    comms = supervisor.InProcessSupervisorComms(supervisor=None)
    with supervisor.set_supervisor_comms(comms):
        assert seconds_before_firing(100.0, 101.0) == 0.0
    assert seconds_before_firing(100.0, 101.0) > 0.0
