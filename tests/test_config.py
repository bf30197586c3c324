import dataclasses
from pathlib import Path

import pytest

from swc_rs.config import DetectConfig, load_config, load_zone_rules
from swc_rs.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_default_toml_documents_the_defaults():
    loaded = load_config(ROOT / "pipelines" / "default.toml")
    defaults = load_config()
    for section in ("raster", "registration", "change", "classify", "compliance", "history", "chips"):
        assert getattr(loaded, section) == getattr(defaults, section), section


def test_zone_rules_file_matches_packaged_copy():
    assert (ROOT / "zones" / "rules.toml").read_bytes() == (ROOT / "swc_rs" / "data" / "zone_rules.toml").read_bytes()
    default, zones = load_zone_rules(ROOT / "zones" / "rules.toml")
    assert set(zones) == {"Z1", "Z2", "Z3", "Z4", "Z5"}
    assert zones["Z1"].min_area_hm2 < default.min_area_hm2  # ecological zones are stricter
    assert zones["Z3"] == default


def test_unknown_key_is_reported(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[change]\nndvi_dorp = 0.3\n")
    with pytest.raises(ConfigError, match="ndvi_dorp"):
        load_config(path)


def test_wrong_type_is_reported(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[raster]\nwindow_size = "big"\n')
    with pytest.raises(ConfigError, match="window_size"):
        load_config(path)


def test_flags_override_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[raster]\nwindow_size = 512\n")
    config = load_config(path, {"raster": {"window_size": 256}})
    assert config.raster.window_size == 256
    assert isinstance(config, DetectConfig) and dataclasses.is_dataclass(config)


def test_invalid_toml(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[raster\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


@pytest.mark.parametrize("line, named", [('format = "gif"', "format"), ("jpeg_quality = 100", "jpeg_quality"),
                                          ("size_px = 4", "size_px"), ("spool_max_mb = -1", "spool_max_mb")])
def test_chip_settings_out_of_range_are_refused(tmp_path, line, named):
    path = tmp_path / "c.toml"
    path.write_text(f"[chips]\n{line}\n")
    with pytest.raises(ConfigError, match=named) as err:
        load_config(path)
    assert err.value.fix  # says what to write instead


def test_chip_settings_reach_the_chips(tmp_path):
    from swc_rs.export.chips import run_options

    path = tmp_path / "c.toml"
    path.write_text('[chips]\nformat = "png"\nsize_px = 128\n')
    config = load_config(path)
    options = run_options({"parameters": config.to_dict()})
    assert (options.format, options.size_px, options.jpeg_quality) == ("png", 128, 90)
    assert run_options({"parameters": "not json"}) == run_options({}) == type(options)()


@pytest.mark.parametrize("line, named", [("hysteresis = 7", "hysteresis"), ("hysteresis = -0.1", "hysteresis"),
                                          ("relative_hysteresis = 1.0", "relative_hysteresis")])
def test_hysteresis_outside_a_fraction_is_refused(tmp_path, line, named):
    """7 meant as 0.7 would switch the hysteresis off without a word: it is refused."""
    path = tmp_path / "c.toml"
    path.write_text(f"[change]\n{line}\n")
    with pytest.raises(ConfigError, match=named) as err:
        load_config(path)
    assert err.value.fix
