import tomllib

import pytest

from pipeline.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config, parse_override


def test_default_file_documents_exactly_the_built_in_defaults():
    assert load_config(DEFAULT_CONFIG_PATH) == Config()
    # Every key of the schema appears in the documented file.
    data = tomllib.loads(DEFAULT_CONFIG_PATH.read_text())
    for section, values in Config().to_dict().items():
        assert section in data, section
        assert set(values) == set(data[section]), section


def test_override_on_the_command_line_wins():
    cfg = load_config(DEFAULT_CONFIG_PATH, [parse_override("asr.beam_size=1"), parse_override("asr.device=cpu")])
    assert cfg.asr.beam_size == 1
    assert cfg.asr.device == "cpu"


@pytest.mark.parametrize(
    "override, message",
    [
        ("asr.beam_sise=2", "asr.beam_sise: unknown key"),
        ("asr.beam_size='five'", "asr.beam_size: expected int"),
        ("asr.beam_size=0", "asr.beam_size: must be >= 1"),
        ("asr.device=tpu", "asr.device: 'tpu' is not allowed"),
        ("scoring.weights.speed=1.0", "scoring.weights: unknown component"),
        ("nosuch.key=1", "nosuch: unknown key"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [parse_override(override)])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[asr\nbeam_size = 2\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
