"""Writing a report: its format from the file name, the JSON, CSV and HTML text, atomically."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import InvalidParameterError
from ..io.atomic import check_target, write_atomically
from .page import html_text
from .records import (
    CSV_FIELDS,
    RECORD_FIELDS,
    REPORT_FORMATS,
    SCHEMA_VERSION,
    ImageRecord,
    RunReport,
    iso_time,
    plain_value,
    totals,
)


def report_format(path: str | os.PathLike[str]) -> str:
    """The report format a path's extension names: ``"json"``, ``"csv"`` or ``"html"``.

    Call it when options are checked, before any work, so a bad name is a usage error.

    >>> report_format("run.HTML")
    'html'

    Raises
    ------
    InvalidParameterError
        For any other extension; the message names the allowed ones.
    """
    suffix = Path(path).suffix.lower()
    kind = REPORT_FORMATS.get(suffix)
    if kind is None:
        shown = suffix or "no extension"
        raise InvalidParameterError(
            f"report {os.fspath(path)!r}: unknown report format ({shown}); use .json, .csv or .html"
        )
    return kind


def report_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that a ``.json`` report satisfies."""
    from importlib import resources

    text = resources.files("tvdenoise").joinpath("schemas/report.schema.json").read_text("utf-8")
    result: dict[str, Any] = json.loads(text)
    return result


def write_report(
    path: str | os.PathLike[str],
    run: RunReport,
    records: Iterable[ImageRecord],
    *,
    overwrite: bool = True,
) -> Path:
    """Write a report of ``run`` in the format ``path``'s extension names, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        ``*.json``, ``*.csv`` or ``*.html``; its folder must exist.
    run : RunReport
        The run; ``run.finished`` None is written as now.
    records : iterable of ImageRecord
        One per input, in the order to show. In HTML, records with ``pictures`` get
        thumbnails and a crop; every image gets its plot and parameter table.
    overwrite : bool
        Replace an existing report (default). With False an existing ``path`` is an error.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    InvalidParameterError
        For an unknown extension.
    ImageWriteError
        If the file cannot be written (the message starts with the path).
    """
    kind = report_format(path)
    records = list(records)
    if run.finished is None:
        run = dataclasses.replace(run, finished=datetime.now(timezone.utc))
    name = os.fspath(path)
    target = Path(name)
    check_target(target, name, overwrite)
    if kind == "json":
        text = _json_text(report_dict(run, records))
    elif kind == "csv":
        text = _csv_text(records)
    else:
        text = html_text(run, records)
    write_atomically(target, text.encode("utf-8"), name, overwrite)
    return target


def _record_dict(record: ImageRecord) -> dict[str, Any]:
    return {name: plain_value(getattr(record, name)) for name in RECORD_FIELDS}


def report_dict(run: RunReport, records: Sequence[ImageRecord]) -> dict[str, Any]:
    """The JSON report as a dict (what ``.json`` reports hold)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "tvdenoise",
        "version": run.version,
        "command": [str(part) for part in run.command],
        "settings": plain_value(run.settings),
        "started": iso_time(run.started),
        "finished": iso_time(run.finished),
        "totals": totals(records),
        "images": [_record_dict(record) for record in records],
    }


def _json_text(report: dict[str, Any]) -> str:
    """Indented, except one line per image, so a long batch stays readable and diffable."""
    images = report["images"]
    head = json.dumps({**report, "images": []}, indent=1, allow_nan=False)
    lines = ",\n  ".join(json.dumps(image, allow_nan=False) for image in images)
    body = f"[\n  {lines}\n ]" if images else "[]"
    return head[: head.rindex("[]")] + body + head[head.rindex("[]") + 2 :] + "\n"


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _csv_text(records: Sequence[ImageRecord]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for record in records:
        writer.writerow([_csv_cell(getattr(record, name)) for name in CSV_FIELDS])
    return buffer.getvalue()
