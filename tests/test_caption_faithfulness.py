"""Caption faithfulness on the tiny world with an oracle segmenter built from the ground truth, and a wrong one."""
import numpy as np
import pytest

from tfvgs import data
from tfvgs.evaluation import caption_faithfulness
from tfvgs.config import get_config
from tfvgs.models.attribute_segmenter import ATTRIBUTE_FAMILIES, NUM_CLASSES

CONFIG = get_config("tiny")


class OracleSegmenter:
    """Returns, batch after batch, logits that say exactly what the rendering's ground truth says (optionally with
    the colour of every object shifted to the next colour)."""

    def __init__(self, batches, shift_color=False):
        self.batches, self.calls, self.shift_color = batches, 0, shift_color

    def __call__(self, images, training=False):
        batch = self.batches[self.calls]
        self.calls += 1
        attributes = np.asarray(batch["attributes"]).astype(np.int64)       # [B, S, S, 4], 0 = background
        foreground = attributes[..., 0] > 0
        maps = {"foreground": np.where(foreground, 10.0, -10.0)[..., None].astype(np.float32)}
        for i, family in enumerate(ATTRIBUTE_FAMILIES):
            classes = NUM_CLASSES[family]
            ids = np.clip(attributes[..., i] - 1, 0, classes - 1)
            if family == "color" and self.shift_color:
                ids = (ids + 1) % classes
            maps[family] = np.where(np.eye(classes, dtype=bool)[ids], 10.0, -10.0).astype(np.float32)
        return maps


@pytest.fixture(scope="module")
def batches(tiny_world):
    return list(data.scenes_dataset(tiny_world["scenes"], "train", CONFIG, batch_size=8))


def test_an_oracle_segmenter_gives_true_captions(batches):
    result = caption_faithfulness.faithfulness(OracleSegmenter(batches), batches, CONFIG)
    assert result["n_scenes"] == sum(len(b["image"]) for b in batches) and result["kept_fraction"] > 0.8
    for family in caption_faithfulness.FAMILIES:
        assert result["agreement"][family] >= 0.9, (family, result)
    assert result["ungrounded_mentions"] <= 0.1 and result["caption_correct"] >= 0.8


def test_a_segmenter_that_confuses_colours_is_caught_in_the_colour_words_only(batches):
    result = caption_faithfulness.faithfulness(OracleSegmenter(batches, shift_color=True), batches, CONFIG)
    assert result["agreement"]["color"] <= 0.1
    assert result["agreement"]["shape"] >= 0.9 and result["caption_correct"] <= 0.1


def test_natural_captions_may_leave_objects_out_without_being_wrong(batches):
    result = caption_faithfulness.faithfulness(OracleSegmenter(batches), batches, CONFIG, style="natural",
                                               max_scenes=12)
    assert result["n_scenes"] == 12 and result["caption_correct"] >= 0.8
    assert sum(result["attribute_words"].values()) > 0


def test_an_empty_dataset_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        caption_faithfulness.faithfulness(OracleSegmenter([]), [], CONFIG)
