"""Typed settings: one field per option, layered and checked in one place, picklable."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from pathlib import Path

import pytest
import typer

from tvdenoise import config, denoise
from tvdenoise.cli import app
from tvdenoise.errors import ConfigError
from tvdenoise.settings import RunSettings, SolveSettings


def test_later_layers_override_earlier_ones() -> None:
    settings = RunSettings.resolve(
        RunSettings.of(beta=1.5),
        {"weight": 0.2, "tv": "anisotropic", "suffix": "_p"},
        {"weight": 0.3, "color": "channelwise"},
        {"weight": "0.07"},  # the command line gives text; the check makes it a number
    )
    assert settings.solve.weight == 0.07
    assert settings.solve.tv == "anisotropic" and settings.solve.color == "channelwise"
    assert settings.solve.beta == 1.5 and settings.output.suffix == "_p"
    assert settings.solve.max_iter == SolveSettings().max_iter


def test_config_keys_are_the_fields_and_overwrite_is_not_one(tmp_path: Path) -> None:
    fields = RunSettings.fields()
    assert set(config.KEYS) == {name for name, (_, meta) in fields.items() if meta.key}
    assert set(fields) - set(config.KEYS) == {"overwrite"}
    assert RunSettings().values() == config.DEFAULTS
    cfg = tmp_path / "c.toml"
    cfg.write_text("overwrite = true\n")
    with pytest.raises(ConfigError, match="unknown key 'overwrite'"):
        config.load_config(cfg)


def test_every_setting_has_an_option_with_its_flag_and_help() -> None:
    command = typer.main.get_command(app)
    options = {param.name: param for param in command.params}
    for name, (_, meta) in RunSettings.fields().items():
        assert meta.help.endswith(".") and meta.flag.startswith("--")
        option = options[name]
        assert meta.flag in option.opts or meta.flag in option.opts[0], name
        assert option.help == meta.help


def test_settings_pickle_and_are_frozen() -> None:
    settings = RunSettings.of(weight=0.1, spacing="1,2", format="jpg", device="cpu")
    assert pickle.loads(pickle.dumps(settings)) == settings
    assert settings.output.format == "jpeg" and settings.solve.spacing == (1.0, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.solve.weight = 0.2  # type: ignore[misc]


def test_denoise_options_are_keywords_of_denoise() -> None:
    options = RunSettings.of(weight="auto", sigma="25/255").solve.denoise_options()
    assert options["sigma"] == pytest.approx(25 / 255)
    assert set(options) <= set(inspect.signature(denoise).parameters)
    fixed = RunSettings.of(weight=0.1, spacing="2,1").solve.denoise_options()
    assert "sigma" not in fixed and fixed["spacing"] == (2.0, 1.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"solver": "rof", "beta": 1.5}, "--solver rof needs beta = 1"),
        ({"fidelity": "l1"}, "--weight auto chooses the weight for Gaussian noise"),
        ({"stack": "volume"}, "--stack volume needs a numeric --weight"),
        ({"weight": 0.1, "spacing": "3,1,1"}, "--spacing has 3 steps"),
        ({"tile": 64, "tile_overlap": 64}, "--tile-overlap (64) must be smaller than --tile (64)"),
        ({"weight": 0.1, "sigma": 0.1}, "--sigma is used only with --weight auto"),
        ({"overwrite": True, "skip_existing": True}, "contradict each other"),
    ],
)
def test_options_that_contradict_each_other_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        RunSettings.of(**options)
    assert message in str(raised.value)


def test_a_run_that_only_reads_skips_the_denoising_checks() -> None:
    settings = RunSettings.resolve(command_line={"fidelity": "l1"}, denoise=False)
    assert settings.solve.fidelity == "l1" and settings.solve.auto


def test_values_name_the_flag_from_the_command_line_and_the_key_elsewhere() -> None:
    with pytest.raises(ConfigError, match=r"^--max-iter must be an integer >= 1, got 0$"):
        RunSettings.resolve(command_line={"max_iter": 0})
    with pytest.raises(ConfigError, match=r"^max_iter must be an integer >= 1, got 0$"):
        RunSettings.of(max_iter=0)
    with pytest.raises(ConfigError, match="unknown setting 'wieght'"):
        RunSettings.of(wieght=0.1)


def test_to_toml_of_settings_reads_back_to_the_same_settings(tmp_path: Path) -> None:
    settings = RunSettings.of(weight=0.05, spacing="2,1", name="{stem}_x{suffix}", quality=90)
    saved = tmp_path / "saved.toml"
    saved.write_text(config.to_toml(settings, "header"))
    assert RunSettings.resolve(config_file=config.load_config(saved)) == settings


def test_a_report_record_reads_typed_settings_as_it_reads_a_dict() -> None:
    import numpy as np

    from tvdenoise.report import image_record

    noisy = np.random.default_rng(0).random((12, 14))
    _, solve = denoise(noisy, weight=0.2, tv="isotropic", return_record=True)
    settings = RunSettings.of(weight=0.2, tv="isotropic", color="channelwise")
    typed = image_record("a.png", None, noisy, solve, settings.solve, device="cpu")
    plain = image_record(
        "a.png", None, noisy, solve, {**settings.solve.denoise_options(), "device": "cpu"}
    )
    assert typed == plain
    assert (typed.weight, typed.tv, typed.color, typed.device) == (
        0.2,
        "isotropic",
        "channelwise",
        "cpu",
    )


def test_mask_is_a_read_setting_with_its_key_flag_and_check(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    assert RunSettings.fields()["mask"][0] == "read"
    assert RunSettings.of(mask="NaN").read.mask == "nan"
    assert RunSettings.of(mask="holes.png").read.mask == "holes.png"
    with pytest.raises(ConfigError, match=r"^mask must be 'nan' or a mask image's path"):
        RunSettings.of(mask="")
    cfg = tmp_path / "c.toml"
    cfg.write_text('mask = "nan"\n')
    assert config.load_config(cfg) == {"mask": "nan"}
    shown = CliRunner().invoke(app, ["--show-config", "--mask", "nan"])
    assert shown.exit_code == 0 and 'mask = "nan"' in shown.stdout
    assert "# mask = (not set)" in CliRunner().invoke(app, ["--show-config"]).stdout
    # Masked images are solved one by one (their own NaN pixels or the mask image).
    assert RunSettings.of(weight=0.1, batch_size=4).batching
    assert not RunSettings.of(weight=0.1, batch_size=4, mask="nan").batching


def test_volume_takes_the_automatic_weight_only_when_every_input_is_a_clip() -> None:
    with pytest.raises(ConfigError, match="--stack volume needs a numeric --weight"):
        RunSettings.resolve(command_line={"stack": "volume"})
    settings = RunSettings.resolve(command_line={"stack": "volume"}, clips=True)
    assert settings.solve.auto and settings.read.stack == "volume"
    assert config.resolve(command_line={"stack": "volume"}, clips=True) == settings
