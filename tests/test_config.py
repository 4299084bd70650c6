import argparse

import pytest

from tfvgs import config as config_lib


def test_presets_share_one_schema_and_differ_in_size():
    tiny, cpu, paper = (config_lib.get_config(n) for n in ("tiny", "cpu", "paper"))
    assert set(tiny.to_dict()) == set(paper.to_dict())
    assert tiny.world.image_size < cpu.world.image_size < paper.world.image_size
    assert cpu.world.image_size == 64 and paper.world.image_size == 128


def test_overrides_parse_json_and_reject_unknown_fields():
    c = config_lib.get_config("tiny", ["world.image_size=48", "speech.rate_range=[150, 160]", "name=custom"])
    assert c.world.image_size == 48 and c.speech.rate_range == (150, 160) and c.name == "custom"
    with pytest.raises(ValueError, match="Unknown config field 'world.imagesize'"):
        config_lib.get_config("tiny", ["world.imagesize=3"])
    with pytest.raises(ValueError, match="section.field=value"):
        config_lib.get_config("tiny", ["world.image_size"])
    with pytest.raises(ValueError, match="Unknown config preset 'huge'"):
        config_lib.get_config("huge")


def test_save_load_round_trip(tmp_path):
    c = config_lib.get_config("cpu", ["seed=7"])
    c.save(str(tmp_path / "config.json"))
    assert config_lib.Config.load(str(tmp_path / "config.json")) == c


def test_command_line_flags():
    parser = argparse.ArgumentParser()
    config_lib.add_config_flags(parser)
    args = parser.parse_args(["--config", "cpu", "--set", "data.num_shards=3"])
    assert config_lib.config_from_args(args).data.num_shards == 3
