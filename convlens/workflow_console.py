"""What Snakemake itself prints on the console during a run: one line per finished job, and errors.

Snakemake 9 prints about 14 lines a job: the rule's block (input, output, log, jobid, benchmark,
reason, wildcards, threads, resources), ``Shell command: None`` for a script rule under
``printshellcmds``, ``Select jobs to execute...``, ``Execute 1 jobs...``, a time stamp with ``Finished
jobid: N (Rule: r)``, and ``n of N steps (x%) done``. ``--quiet rules`` drops the block but also the
``Error in rule`` block that names a failed job's log, and leaves five lines a job. ``JobLinesFilter``,
put on Snakemake's console handler only, keeps the ``n of N steps (x%) done`` line and the errors and
drops the rest of each job's lines and the start-up banner; Snakemake's complete log
(``.snakemake/log/*.snakemake.log``, named at the end of every run) keeps everything. A dry run and
``--verbose`` are left as they are.
"""

from __future__ import annotations

import logging

# Snakemake's log events (snakemake_interface_logger_plugins.common.LogEvent, a StrEnum) by value
DROPPED_EVENTS = frozenset({"job_info", "group_info", "job_started", "job_finished", "workflow_started"})
DROPPED_MESSAGES = frozenset({"Select jobs to execute..."})
SNAKEMAKE_LOGGER = "snakemake.logging"
CONSOLE_HANDLER = "DefaultStreamHandler"  # the name Snakemake gives its console handler


class JobLinesFilter(logging.Filter):
    """Drops Snakemake's per-job lines but the progress line; errors and everything else pass.

    ``dry_run``: asked at each record whether the run is a dry run (whose plan is the job lines, so
    they all pass); the Snakefile is read before Snakemake knows (``workflow.dryrun`` is False then)."""

    def __init__(self, dry_run=lambda: False):
        super().__init__()
        self.dry_run = dry_run

    def filter(self, record: logging.LogRecord) -> bool:
        if self.dry_run():
            return True
        event = getattr(record, "event", None)
        if event in DROPPED_EVENTS:
            return False
        if event == "shellcmd" and not getattr(record, "cmd", None):  # a script rule: "Shell command: None"
            return False
        return not (event is None and record.getMessage() in DROPPED_MESSAGES)


def quiet_job_lines(dry_run=lambda: False) -> bool:
    """Puts ``JobLinesFilter`` on Snakemake's console handler; False when there is none (a logger
    plugin writes the console, or Snakemake's logging is not set up)."""
    logger = logging.getLogger(SNAKEMAKE_LOGGER)
    if logger.getEffectiveLevel() <= logging.DEBUG:  # --verbose: the user asked for everything
        return False
    handlers = [h for h in logger.handlers if h.name == CONSOLE_HANDLER]
    for handler in handlers:
        if not any(isinstance(f, JobLinesFilter) for f in handler.filters):
            handler.addFilter(JobLinesFilter(dry_run))
    return bool(handlers)
