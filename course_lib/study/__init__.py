"""The report's numbers and the book's three studies (specs, stats, tables, queue): may import engine, models, blocks."""
# What the experiment chapters use, as ``from course_lib import study as ex``.
from .queue import load_latency
from .report import (REPORT_PARAMS, REPORT_TABLE1, REPORT_TABLE2, REPORT_TRANSFER, TABLE1, TABLE1_PAIRS, TABLE2,
                     TRANSFER_MODELS)
from .specs import RECIPE_ROW, command, find, record_dirs, results_dir, study
from .stats import welch
from .tables import collect, compare, missing_text, open_chapter, setting, summary

__all__ = ["REPORT_PARAMS", "REPORT_TABLE1", "REPORT_TABLE2", "REPORT_TRANSFER", "TABLE1", "TABLE1_PAIRS", "TABLE2",
           "TRANSFER_MODELS", "RECIPE_ROW", "collect", "command", "compare", "find", "load_latency",
           "missing_text", "open_chapter", "record_dirs", "results_dir", "setting", "study", "summary", "welch"]
