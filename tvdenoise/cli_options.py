"""The command line's options, declared once as ``Annotated`` aliases in named help groups.

An option that sets a field of :class:`~tvdenoise.settings.RunSettings` takes its flag, help
text and allowed values from the field (:func:`setting`), and its help group from the field's
settings group, so a new setting is one field there and one parameter of
:func:`tvdenoise.cli.run`. Enumerations list their values in ``--help``
(``--tv [isotropic|anisotropic|symmetric]``); a value outside them is refused by the field's
check, in one line that says what is allowed. The rest (``-o``, ``--json``, ``--report``, ...)
belong to the command line alone and are declared here too.

Help is plain text (no colours or boxes: ``rich_markup_mode=None``), with one section per
group: :class:`GroupedCommand` writes the ``rich_help_panel`` of each option as a section.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from . import config
from .settings import RunSettings

__all__ = ["PANELS", "GroupedCommand", "setting"]

#: The help section of each settings group, then of the command line's own options.
PANELS = {
    "read": "Inputs",
    "output": "Outputs",
    "solve": "Denoising",
    "tiles": "Tiles and memory",
    "exec": "Where it runs",
}
SETTINGS_PANEL = "Settings files"
REPORT_PANEL = "Reports and messages"


class GroupedCommand(TyperCommand):
    """A command whose plain-text help lists its options in sections, one per help group
    (the options' ``rich_help_panel``, in the order the parameters are declared)."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            default = "Arguments" if param.param_type_name == "argument" else "Options"
            panel = getattr(param, "rich_help_panel", None) or default
            sections.setdefault(panel, []).append(record)
        # One column width for every section, as a single list would have.
        width = min(30, max(len(term) for records in sections.values() for term, _ in records))
        for panel, records in sections.items():
            with formatter.section(panel):
                formatter.write_dl([(term.ljust(width), text) for term, text in records])


def setting(name: str, *aliases: str, metavar: str | None = None, flag: str | None = None) -> Any:
    """The ``typer.Option`` of settings field ``name``: its flag (or ``flag``, such as
    ``--recursive/--no-recursive``) and ``aliases``, its help, its group and, for an
    enumeration, its values as the metavar."""
    group, meta = RunSettings.fields()[name]
    if meta.choices is not None:
        metavar = "[" + "|".join(meta.choices) + "]"
    return typer.Option(
        flag or meta.flag, *aliases, metavar=metavar, help=meta.help, rich_help_panel=PANELS[group]
    )


def _cli(*decls: str, panel: str, metavar: str | None = None, **options: Any) -> Any:
    return typer.Option(*decls, metavar=metavar, rich_help_panel=panel, **options)


# --- settings fields, by group ---------------------------------------------------------------

Recursive = Annotated[bool, setting("recursive", "-r", flag="--recursive/--no-recursive")]
MaxPixels = Annotated[int, setting("max_pixels", metavar="N")]
Mask = Annotated[str | None, setting("mask", metavar="FILE|nan")]
Stack = Annotated[str, setting("stack")]
AllFrames = Annotated[
    bool,
    _cli(
        "--all-frames",
        panel=PANELS["read"],
        help="Denoise every frame of a GIF/WebP (same as --stack frames).",
    ),
]

Output = Annotated[
    str | None,
    _cli(
        "--output",
        "-o",
        panel=PANELS["output"],
        metavar="PATH",
        help="Output file (one input), folder, or - (stdout).",
    ),
]
Suffix = Annotated[str, setting("suffix", metavar="TEXT")]
Name = Annotated[str | None, setting("name", metavar="TEMPLATE")]
Format = Annotated[str | None, setting("format")]
Quality = Annotated[int | None, setting("quality", metavar="N")]
Compression = Annotated[str, setting("compression")]
Overwrite = Annotated[bool, setting("overwrite")]
SkipExisting = Annotated[bool, setting("skip_existing", flag="--skip-existing/--no-skip-existing")]

Weight = Annotated[str, setting("weight", "-w", metavar="FLOAT|auto")]
Sigma = Annotated[str | None, setting("sigma", metavar="S")]
Beta = Annotated[float, setting("beta", metavar="FLOAT")]
Tv = Annotated[str, setting("tv")]
TgvRatio = Annotated[float, setting("tgv_ratio", metavar="FLOAT")]
Color = Annotated[str, setting("color")]
Fidelity = Annotated[str, setting("fidelity")]
Solver = Annotated[str, setting("solver")]
MaxIter = Annotated[int, setting("max_iter", metavar="N")]
Tol = Annotated[float, setting("tol", metavar="FLOAT")]
Spacing = Annotated[str | None, setting("spacing", metavar="STEPS")]

Tile = Annotated[int, setting("tile", metavar="PX")]
TileOverlap = Annotated[int, setting("tile_overlap", metavar="PX")]
MaxMemory = Annotated[str, setting("max_memory", metavar="SIZE")]

Device = Annotated[str, setting("device", metavar="DEVICE")]
Workers = Annotated[int, setting("workers", "-j", metavar="N")]
BatchSize = Annotated[int, setting("batch_size", metavar="N")]
Shard = Annotated[
    str | None,
    _cli(
        "--shard",
        panel=PANELS["exec"],
        metavar="K/N",
        help="Process only shard K of N (1 <= K <= N).",
    ),
]
DaskScheduler = Annotated[str | None, setting("dask_scheduler", metavar="ADDRESS")]

# --- the command line's own options ----------------------------------------------------------

Inputs = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="INPUT...", help="Image files, folders, globs, or - (stdin).", show_default=False
    ),
]
ConfigFile = Annotated[
    str | None,
    _cli(
        "--config",
        panel=SETTINGS_PANEL,
        metavar="FILE",
        help="TOML settings file (see --show-config).",
    ),
]
Preset = Annotated[
    str | None,
    _cli(
        "--preset",
        panel=SETTINGS_PANEL,
        metavar="[" + "|".join(config.preset_names()) + "]",
        help="Shipped settings.",
    ),
]
ShowConfig = Annotated[
    bool,
    _cli(
        "--show-config", panel=SETTINGS_PANEL, help="Print the effective settings as TOML and exit."
    ),
]
Report = Annotated[
    list[str] | None,
    _cli(
        "--report",
        panel=REPORT_PANEL,
        metavar="PATH",
        help="Write a report of the run: .json, .csv or .html (repeat for several).",
    ),
]
Reference = Annotated[
    str | None,
    _cli(
        "--reference",
        panel=REPORT_PANEL,
        metavar="PATH",
        help="Clean image, or folder matched by relative path: adds PSNR/SSIM to the report.",
    ),
]
ReportImages = Annotated[
    int,
    _cli(
        "--report-images",
        panel=REPORT_PANEL,
        metavar="N",
        help="How many images get pictures in an HTML report.",
    ),
]
JsonLines = Annotated[
    bool,
    _cli("--json", panel=REPORT_PANEL, help="JSON lines on stdout: one per image, then a summary."),
]
EstimateNoise = Annotated[
    bool,
    _cli(
        "--estimate-noise",
        panel=REPORT_PANEL,
        help="Only print each image's estimated noise sigma (with --json: JSON lines).",
    ),
]
DryRun = Annotated[
    bool, _cli("--dry-run", panel=REPORT_PANEL, help="List what would be done; do nothing.")
]
Quiet = Annotated[bool, _cli("--quiet", "-q", panel=REPORT_PANEL, help="No progress or summaries.")]
Verbose = Annotated[
    bool,
    _cli(
        "--verbose",
        "-v",
        panel=REPORT_PANEL,
        help="Also name each file skipped in a folder, with why, and give each image's "
        "seconds by stage.",
    ),
]
