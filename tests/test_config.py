import argparse
import os

import pytest

from tfvgs import config as config_lib
from tfvgs import workdir as layout


def test_presets_share_one_schema_and_differ_in_size():
    tiny, cpu, paper = (config_lib.get_config(n) for n in ("tiny", "cpu", "paper"))
    assert set(tiny.to_dict()) == set(paper.to_dict())
    assert tiny.world.image_size <= cpu.world.image_size < paper.world.image_size == 128
    assert tiny.train.steps < cpu.train.steps < paper.train.steps
    assert tiny.gan.total_kimg < cpu.gan.total_kimg < paper.gan.total_kimg


def test_overrides_parse_json_and_reject_unknown_fields():
    c = config_lib.get_config("tiny", ["world.image_size=48", "speech.rate_range=[150, 160]", "name=custom"])
    assert c.world.image_size == 48 and c.speech.rate_range == (150, 160) and c.name == "custom"
    with pytest.raises(ValueError, match="Unknown config field 'world.imagesize'"):
        config_lib.get_config("tiny", ["world.imagesize=3"])
    with pytest.raises(ValueError, match=r"Unknown config section 'trian' .*Known: \[.*'train'.*'world'\]"):
        config_lib.get_config("tiny", ["trian.steps=5"])
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


def _args(argv, **flags):
    parser = argparse.ArgumentParser()
    config_lib.add_config_flags(parser, **flags)
    return parser.parse_args(argv)


def test_a_workdir_command_takes_the_saved_config_and_refuses_another_preset(tmp_path):
    workdir = str(tmp_path / "w")
    # nothing saved: the command's default preset
    assert config_lib.config_from_args(_args([], workdir_flag="--workdir"), saved=layout.saved_config(workdir)).name == "tiny"
    assert config_lib.config_from_args(_args([], default="demo"), saved=layout.saved_config(workdir)).name == "demo"
    saved = config_lib.get_config("demo", ["data.gan_samples=1234"])
    os.makedirs(os.path.join(workdir, "davenet"))
    saved.save(os.path.join(workdir, "davenet", "config.json"))
    # without --config: the saved config, its overrides included, with new --set on top
    resolved = config_lib.config_from_args(_args(["--set", "train.steps=7"], workdir_flag="--workdir"),
                                           saved=layout.saved_config(workdir))
    assert resolved.name == "demo" and resolved.data.gan_samples == 1234 and resolved.train.steps == 7
    # the same preset named explicitly is fine; another one is refused unless asked for
    assert config_lib.config_from_args(_args(["--config", "demo"], workdir_flag="--workdir"),
                                       saved=layout.saved_config(workdir)).name == "demo"
    with pytest.raises(ValueError, match=r"made with config 'demo' .*davenet/config.json.*Received: --config tiny"):
        config_lib.config_from_args(_args(["--config", "tiny"], workdir_flag="--workdir"), saved=layout.saved_config(workdir))
    assert config_lib.config_from_args(_args(["--config", "tiny", "--other_config"], workdir_flag="--workdir"),
                                       saved=layout.saved_config(workdir)).name == "tiny"


def test_config_to_flags_reproduces_the_config():
    config = config_lib.get_config("demo", ["data.gan_samples=1234", "seed=3", "name=mine"])
    args = _args(config_lib.config_to_flags(config))
    assert config_lib.config_from_args(args) == config
