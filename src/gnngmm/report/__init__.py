"""Reports to open in a browser: ``report.html`` for a run (from :mod:`gnngmm.explain`'s tables),
``summary.html`` for a sweep, and the same tables sent to W&B."""

from gnngmm.report.page import CSV_NAMES, write_report, write_tables
from gnngmm.report.summary_page import write_summary_html
from gnngmm.report.wandb_log import log_to_wandb

__all__ = ["CSV_NAMES", "log_to_wandb", "write_report", "write_summary_html", "write_tables"]
