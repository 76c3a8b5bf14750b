"""Snakemake's console during a run: the progress line of each job and the errors (JobLinesFilter)."""

import logging

import pytest

from convlens.workflow_console import CONSOLE_HANDLER, SNAKEMAKE_LOGGER, JobLinesFilter, quiet_job_lines


@pytest.fixture
def restore_snakemake_logger():
    logger = logging.getLogger(SNAKEMAKE_LOGGER)
    saved = logger.handlers[:], logger.level
    yield
    logger.handlers[:], logger.level = saved


def record(msg, event=None, **extra):
    rec = logging.LogRecord(SNAKEMAKE_LOGGER, logging.INFO, __file__, 1, msg, None, None)
    if event is not None:
        rec.event = event
    rec.__dict__.update(extra)
    return rec


def test_each_jobs_lines_but_progress_and_errors_are_dropped():
    keep = JobLinesFilter().filter
    # what Snakemake 9 logs around one job of a script rule, in order
    job = {
        "rule block": record(None, "job_info", rule_name="measure"),
        "Shell command: None": record(None, "shellcmd", cmd=None),
        "Select jobs to execute...": record("Select jobs to execute..."),
        "Execute 1 jobs...": record("Execute 1 jobs...", "job_started", jobs=[4]),
        "Finished jobid": record("Finished jobid: 4 (Rule: measure)", "job_finished", job_id=4),
        "progress": record(None, "progress", done=4, total=38),
    }
    assert [name for name, rec in job.items() if keep(rec)] == ["progress"]
    assert keep(record(None, "job_error", rule_name="measure"))
    assert keep(record("Exiting because a job execution failed. Look below for error messages", "error"))
    assert keep(record("Complete log(s): /study/.snakemake/log/x.snakemake.log"))
    assert keep(record(None, "shellcmd", cmd="echo done"))  # a shell rule's command, under printshellcmds
    assert keep(record("Job stats:\njob count", "run_info"))
    assert not keep(record(None, "workflow_started"))  # the SNAKEMAKE banner (in the complete log)


def test_the_filter_goes_on_snakemakes_console_handler_only_and_once(restore_snakemake_logger):
    logger = logging.getLogger(SNAKEMAKE_LOGGER)
    console, logfile = logging.StreamHandler(), logging.NullHandler()
    console.name = CONSOLE_HANDLER
    logger.handlers[:] = [console, logfile]
    logger.setLevel(logging.INFO)
    assert quiet_job_lines() and quiet_job_lines()
    assert [type(f) for f in console.filters] == [JobLinesFilter] and not logfile.filters


def test_verbose_and_a_plugins_console_are_left_alone(restore_snakemake_logger):
    logger = logging.getLogger(SNAKEMAKE_LOGGER)
    console = logging.StreamHandler()
    console.name = CONSOLE_HANDLER
    logger.handlers[:] = [console]
    logger.setLevel(logging.DEBUG)  # --verbose
    assert not quiet_job_lines() and not console.filters
    logger.setLevel(logging.INFO)
    logger.handlers[:] = [logging.StreamHandler()]  # a logger plugin's handler, another name
    assert not quiet_job_lines()


def test_a_dry_runs_plan_passes_whole():
    """The filter is put on while the Snakefile is read, before Snakemake knows whether the run is a
    dry run; it asks at each record, and a dry run's job blocks (its plan) all pass."""
    dry = {"now": False}
    keep = JobLinesFilter(lambda: dry["now"]).filter
    block = record(None, "job_info", rule_name="measure")
    assert not keep(block)
    dry["now"] = True
    assert keep(block) and keep(record("Select jobs to execute..."))
