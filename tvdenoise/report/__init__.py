"""Reports of a run: per-image records, pictures, and JSON / CSV / HTML files.

A run produces one :class:`ImageRecord` per input (built with :func:`image_record` or
:func:`failed_record`, cheap and picklable, so worker processes can send them back), and
optionally an :class:`ImagePictures` for the first few images (small PNG thumbnails made with
:func:`make_pictures` while the full images are still in memory; a batch of thousands never
holds them all). :func:`write_report` writes the records with a :class:`RunReport` as:

- ``.json``: one object, ``{"tool", "version", "command", "settings", "started", "finished",
  "totals", "images": [...]}``, valid against ``tvdenoise/schemas/report.schema.json``
  (:func:`report_schema`);
- ``.csv``: a header and one row per image (the record's fields, without the history);
- ``.html``: one self-contained page (pictures as ``data:`` URIs, plots as inline SVG, a small
  inline script to sort the summary table; nothing is fetched from the network).

This module imports neither torch nor the command line.

Examples
--------
>>> import numpy as np
>>> import tvdenoise as tvd
>>> from tvdenoise.report import RunReport, image_record, make_pictures, write_report
>>> noisy = np.random.default_rng(0).uniform(size=(32, 32))
>>> denoised, solve = tvd.denoise(noisy, weight=0.1, return_record=True)
>>> settings = {"weight": 0.1, "beta": 1.0, "tv": "isotropic", "color": "vectorial",
...             "fidelity": "l2", "device": "cpu"}
>>> record = image_record("in.png", "out.png", noisy, solve, settings)
>>> record.pictures = make_pictures(noisy, denoised)
>>> record.status, record.width, record.channels
('ok', 32, 1)
>>> write_report("run.html", RunReport(settings=settings), [record])  # doctest: +SKIP
PosixPath('run.html')
"""

from __future__ import annotations

from .files import report_dict, report_format, report_schema, totals, write_report
from .page import history_svg
from .pictures import ImagePictures, make_pictures
from .records import (
    CSV_FIELDS,
    RECORD_FIELDS,
    REPORT_FORMATS,
    SCHEMA_VERSION,
    STATUSES,
    ImageRecord,
    RunReport,
    failed_record,
    find_reference,
    image_record,
    reference_metrics,
)

__all__ = [
    "CSV_FIELDS",
    "RECORD_FIELDS",
    "REPORT_FORMATS",
    "SCHEMA_VERSION",
    "STATUSES",
    "ImagePictures",
    "ImageRecord",
    "RunReport",
    "failed_record",
    "find_reference",
    "history_svg",
    "image_record",
    "make_pictures",
    "reference_metrics",
    "report_dict",
    "report_format",
    "report_schema",
    "totals",
    "write_report",
]
