"""The edit stages of paper 000 (sec. 5.4-6.3): the DualEncoder trained with one edited negative image per pair.

    random_edits       GAN h4 units at the salient location ablated at random    (init: davenet)
    hn_random_edits    the same with the hardest in-batch negative               (init: hard_negatives)
    targeted_edits     a concept cluster's top-ranked h4 units ablated            (init: random_edits; clusters: cluster)
    hn_targeted_edits  the same with the hardest in-batch negative               (init: hn_random_edits; hn_cluster)
    exact_edits        the renderer's single-attribute edit (the upper bound)    (init: davenet)

"In training, we use the hardest negative of both methods" (sec. 6.3): the edited image joins the caption's image
impostors and the loss takes the hardest (`DualEncoder.training_loss`). Each stage trains `edits.steps` steps on
Audio CLEVRGAN pairs (`--data_dir`, whose records carry the latents) and then measures its edits on held-out pairs:
`<stage>/edit_success.json` and `<stage>/edits.png` (`tfvgs.edits.edit_report`).
"""
from __future__ import annotations

import json
import os
from typing import Optional

import tensorflow as tf

from tfvgs import data, gan_io
from tfvgs import workdir as layout
from tfvgs.edits import negatives
from tfvgs.stages.davenet import DavenetStage
from tfvgs.voice_augmentation import VoiceAugmentation


class EditStage(DavenetStage):
    """A DavenetStage fine-tuned with one edited negative per pair for `edits.steps` steps."""
    data_kinds = ("gan_pairs",)     # GAN edits need the latents Audio CLEVRGAN records carry
    stops_on_plateau = False        # fine-tunes for edits.steps from a trained model

    def schedule(self):
        return self.config.edits.steps, self.config.train.checkpoint_every


class RandomEditsStage(EditStage):
    name = "random_edits"
    init_from = "davenet"

    def build_model(self):
        model = super().build_model()
        model.negative_source = self.build_negative_source(model)
        return model

    def load_generator(self):
        generator = gan_io.load_generator(self.workdir)
        self.check_generator_drew_the_data(generator)
        return generator

    def check_generator_drew_the_data(self, generator, pairs: int = 8) -> None:
        """The edits redraw each pair's image from its stored latent: that is only an edit of the pair's image if
        this generator drew it. Fails clearly when the data came from another (e.g. retrained) generator."""
        batch = next(iter(data.pairs_dataset(self.data_dir, "train", self.config, pairs)))
        latent = batch["latent"]
        if latent.shape[1] != generator.latent_dim:
            raise ValueError(f"stage {self.name!r} edits GAN-drawn pairs, but the records in {self.data_dir} carry "
                             f"latents of size {latent.shape[1]}, not {generator.latent_dim} "
                             f"({gan_io.generator_path(self.workdir)}): use Audio CLEVRGAN data of this generator")
        drawn = negatives.quantize(generator(latent))
        difference = float(tf.reduce_mean(tf.abs(drawn - batch["image"])))
        if difference > 0.02:
            raise ValueError(f"the pairs in {self.data_dir} were not drawn by {gan_io.generator_path(self.workdir)} "
                             f"(mean pixel difference {difference:.3f} on {pairs} train pairs; same generator: "
                             f"< 0.005): rebuild Audio CLEVRGAN with this generator, or use the one that drew them")

    def change_test(self):
        """None for the paper's pixel test; a `DescribedChange` on W/segmenter for `edits.change_test=segmenter`."""
        test = self.config.edits.change_test
        if test == "pixels":
            return None
        if test != "segmenter":
            raise ValueError(f"`edits.change_test` must be 'pixels' or 'segmenter'. Received: {test!r}")
        path = layout.model_path(self.workdir, "segmenter")
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"`edits.change_test=segmenter` reads edits with the segmenter that captioned the "
                                    f"pairs, but {path} does not exist: run `python -m tfvgs.train --stage segmenter` "
                                    f"in this workdir first")
        from tfvgs.edits.described_change import DescribedChange
        segmenter = layout.load_model(path)
        segmenter.trainable = False
        return DescribedChange(segmenter, min_object_pixels=self.config.segmenter.min_object_pixels)

    def build_negative_source(self, model):
        return negatives.RandomEdits(self.load_generator(), self.config.edits, seed=self.config.seed,
                                     step=model.optimizer.iterations, change_test=self.change_test())

    def cluster_labels(self):
        return None

    def other_cluster_labels(self):
        return None

    def after_training(self, model, logs):
        from tfvgs.edits import edit_report
        pairs = data.pairs_dataset(self.data_dir, "val", self.config, batch_size=min(32, self.config.train.batch_size))
        edit_report.write_edit_report(model, model.negative_source, pairs, self.config, self.workdir,
                                      self.stage_dir, cluster_labels=self.cluster_labels(),
                                      other_labels=self.other_cluster_labels())


class HnRandomEditsStage(RandomEditsStage):
    name = "hn_random_edits"
    hard_negatives = True
    init_from = "hard_negatives"


class TargetedEditsStage(RandomEditsStage):
    name = "targeted_edits"
    init_from = "random_edits"
    cluster_stage = "cluster"

    def read_clusters(self):
        path = os.path.join(self.workdir, self.cluster_stage, "clusters.json")
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"stage {self.name!r} needs the concept clusters of stage {self.cluster_stage!r}, "
                                    f"but {path} does not exist: run `python -m tfvgs.train --stage "
                                    f"{self.cluster_stage}` first")
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)

    def build_negative_source(self, model):
        clusters = self.read_clusters()["clusters"]
        dim = self.config.model.embedding_dim
        if any(u >= dim for c in clusters for u in c["units"]):
            raise ValueError(f"the clusters of stage {self.cluster_stage!r} name embedding units beyond this model's "
                             f"{dim}: they were made for another model. Re-run `--stage {self.cluster_stage}`.")
        return negatives.TargetedEdits(self.load_generator(), self.config.edits, seed=self.config.seed,
                                       step=model.optimizer.iterations,
                                       clusters=[c["units"] for c in clusters],
                                       unit_rankings=[c["h4_ranking"] for c in clusters],
                                       change_test=self.change_test())

    def cluster_labels(self):
        """What each cluster's ablations change (the cluster stage's `label`): the family an edit is scored by."""
        return [c.get("label") for c in self.read_clusters()["clusters"]]

    def other_cluster_labels(self):
        """The region-overlap labels, scored too so that the two labellings can be compared on the same edits."""
        clusters = self.read_clusters()["clusters"]
        return {"region_label": [c.get("region_label") for c in clusters]} if any(
            "region_label" in c for c in clusters) else None


class HnTargetedEditsStage(TargetedEditsStage):
    name = "hn_targeted_edits"
    hard_negatives = True
    init_from = "hn_random_edits"
    cluster_stage = "hn_cluster"


class NoEditsControlStage(EditStage):
    """The equal-steps control of the edit stages: DaveNet trained on for `edits.steps` more steps, on the same
    pairs and schedule as random_edits, with no edited negative. An edit stage's gain over DaveNet is partly longer
    training; its gain over this stage is the edits'. Not in `--stage all` (it costs an edit stage's time); run it
    with `python -m tfvgs.train --stage no_edits_control`, and `evaluate --all` reports it once trained."""

    name = "no_edits_control"
    init_from = "davenet"


class ExactEditsStage(EditStage):
    """Trains on the renderer-edit training set (`beam_pipelines.transfer_test_set --split train`): rendered scenes,
    their spoken synthetic captions and single-attribute renderer edits as the negatives. `--data_dir` is that set.
    It has no val split, so nothing is measured during training; `evaluate --all` measures the model afterwards."""

    name = "exact_edits"
    init_from = "davenet"
    data_kinds = ("renderer_edits",)
    data_splits = ("train",)

    def build_train_dataset(self, skip_batches: int, worker: Optional[data.WorkerShard] = None) -> tf.data.Dataset:
        t = self.config.train
        # DaveNet's caption crops too: it fine-tunes DaveNet, and without them (until 2026-12-07) its isolated-word
        # accuracy fell to chance in every build (val 74.8 -> 54.5) while transfer rose (docs/results.md)
        return data.transfer_dataset(self.data_dir, self.config, "train", t.batch_size, training=True,
                                     skip_examples=skip_batches * t.batch_size, worker=worker,
                                     crop_frames=t.crop_frames if t.crop_weight else None,
                                     voice_augmentation=VoiceAugmentation.from_config(t, self.config.features))

    def build_val_dataset(self) -> Optional[tf.data.Dataset]:
        return None

    def callbacks(self, model):
        return []

    def build_model(self):
        model = super().build_model()
        model.negative_source = negatives.RendererEdits()
        return model
