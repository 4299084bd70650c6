"""benchmarks/audio_clevrgan_bench.py on an untrained tiny generator and segmenter (no timing is asserted)."""
import json

import pytest

from benchmarks import audio_clevrgan_bench as bench
from tests.test_audio_clevrgan import save_untrained_models
from tfvgs.config import get_config

NUM_SAMPLES = 5


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("acg_bench") / "w")
    save_untrained_models(workdir, get_config("tiny"))   # foreground bias 0: 1-4 blobs per image
    # min_confidence 0: every image with a blob is described, so the run writes records and every step has work
    return workdir, bench.main(["--workdir", workdir, "--config", "tiny", "--num_samples", str(NUM_SAMPLES),
                                "--batch_size", "2", "--set", "segmenter.min_confidence=0",
                                "--set", "data.num_shards=1"])


def test_stdout_is_json_lines_in_order(printed):
    _, lines = printed
    assert [line["measure"] for line in lines] == (["audio_clevrgan_end_to_end", "setup"] +
                                                   ["step"] * len(bench.STEPS) + ["bound"])
    assert [line["step"] for line in lines if line["measure"] == "step"] == list(bench.STEPS)
    for line in lines:
        assert json.loads(json.dumps(line)) == line


def test_steps_process_the_samples_asked_for_and_agree_with_the_pipeline(printed):
    _, lines = printed
    end_to_end, steps = lines[0], {line["step"]: line for line in lines if line["measure"] == "step"}
    assert end_to_end["samples"] == NUM_SAMPLES and end_to_end["config"] == "tiny"
    written = end_to_end["records_written"]
    assert 0 < written <= NUM_SAMPLES and end_to_end["rejected"] == NUM_SAMPLES - written
    assert steps["describe"]["samples_rejected"] == NUM_SAMPLES - written
    assert steps["draw"]["items"] == steps["describe"]["items"] == NUM_SAMPLES
    assert steps["caption"]["items"] == steps["speech"]["items"] == steps["logmel"]["items"] == written
    for line in steps.values():
        assert line["samples"] == NUM_SAMPLES and line["records"] == written and line["basis"] == "per_record"
    bound = lines[-1]
    assert bound["step"] == max(steps.values(), key=lambda line: line["fraction_of_end_to_end"])["step"]
    assert bound["fraction_of_end_to_end"] == steps[bound["step"]]["fraction_of_end_to_end"]


def test_nothing_written_is_reported_per_sample_without_dividing_by_zero():
    zero = {"items": 0, "seconds": 0.0}
    measured = {"samples": 4, "records": 0, "setup_seconds": 1.0, "rejected_samples": 4,
                "steps": {"draw": {"items": 4, "seconds": 0.2}, "describe": {"items": 4, "seconds": 0.4},
                          "caption": zero, "speech": zero, "logmel": zero}}
    end_to_end = {"samples": 4, "records_written": 0, "seconds": 4.0}
    lines = bench.step_lines(measured, end_to_end)
    assert all(line["basis"] == "per_sample" and line["s_per_record"] is None for line in lines)
    assert [line["items_per_s"] for line in lines] == [20.0, 10.0, None, None, None]
    assert lines[1]["samples_rejected"] == 4
    bound = bench.bound_line(lines, measured["setup_seconds"], end_to_end["seconds"])
    assert bound["step"] == "describe" and bound["fraction_of_end_to_end"] == 0.1
    assert bound["steps_fraction_sum"] == 0.15 and bound["setup_fraction"] == 0.25
