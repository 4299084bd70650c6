"""`python -m tfvgs.train --stage all --data_dir SCENES --workdir W`: the whole method from rendered scenes to the report.

    segmenter, gan                         on the rendered scenes (SCENES); the gan reports its quality with
                                           the segmenter after every growth phase
    Audio CLEVRGAN pairs                   W/data/pairs         (beam_pipelines.audio_clevrgan)
    semantic and transfer test sets        W/data/semantic, W/data/transfer (rendered, test voices)
    renderer-edit training set             W/data/renderer_edits (for exact_edits)
    davenet, hard_negatives                on W/data/pairs
    random_edits, hn_random_edits          (sec. 5.4; init davenet / hard_negatives)
    cluster, hn_cluster                    (sec. 5.5, unit ranking of sec. 4.2)
    targeted_edits, hn_targeted_edits      (sec. 5.6; init random_edits / hn_random_edits)
    exact_edits                            on W/data/renderer_edits (the upper bound of sec. 6.5)
    (not run here) no_edits_control        DaveNet + edits.steps steps without edits, the equal-steps
                                           control: `python -m tfvgs.train --stage no_edits_control`
    evaluation                             W/eval/report.md (tfvgs.evaluate --all)

Re-running the command skips every step whose output is complete and resumes the one that was interrupted (stages
resume from their checkpoints; a pipeline whose summary.json is missing runs again from scratch).
"""
from __future__ import annotations

import os
import time
from typing import Callable, List, Tuple

import tensorflow as tf

from tfvgs.config import Config, config_to_flags

# (stage, data: "scenes" | "pairs" | "renderer_edits"), in curriculum order
STAGES: Tuple[Tuple[str, str], ...] = (
    ("davenet", "pairs"), ("hard_negatives", "pairs"),
    ("random_edits", "pairs"), ("hn_random_edits", "pairs"),
    ("cluster", "pairs"), ("hn_cluster", "pairs"),
    ("targeted_edits", "pairs"), ("hn_targeted_edits", "pairs"),
    ("exact_edits", "renderer_edits"),
)


class Curriculum:
    """Runs the steps in order; `steps()` lists (name, is_done, run) for inspection and tests."""

    def __init__(self, config: Config, scenes_dir: str, workdir: str, beam_args: List[str] = ()):
        self.config, self.scenes_dir, self.workdir = config, scenes_dir, workdir
        self.beam_args = list(beam_args)

    def data_dir(self, name: str) -> str:
        return self.scenes_dir if name == "scenes" else os.path.join(self.workdir, "data", name)

    def config_flags(self) -> List[str]:
        """The resolved config as --config/--set flags, so pipelines see exactly this run's config."""
        return config_to_flags(self.config)

    # --- steps -----------------------------------------------------------------------------------------------
    def _stage_step(self, name: str, data: str):
        from tfvgs import stages

        def make():
            return stages.get_stage(name)(self.config, self.workdir, self.data_dir(data))

        def done() -> bool:
            return tf.io.gfile.exists(make().done_path)

        return name, done, lambda: make().run()

    def _pipeline_step(self, name: str, module: str, output: str, flags: List[str], splits: Tuple[str, ...] = ()):
        out = self.data_dir(output)

        def run():
            import importlib
            importlib.import_module(module).run(["--output_dir", out, *flags, *self.config_flags(), *self.beam_args])
            from tfvgs import data
            for split in splits:
                files = tf.io.gfile.glob(data.shard_pattern(out, split))
                if not files or data.count_records(files, limit=1) == 0:
                    raise RuntimeError(
                        f"{name} wrote no {split!r} records to {out} (reasons per item: {out}/rejected.jsonl). For "
                        f"Audio CLEVRGAN this means the segmenter described none of those GAN samples confidently: "
                        f"train the gan / segmenter longer, draw more samples, or lower segmenter.min_confidence.")

        return name, lambda: tf.io.gfile.exists(os.path.join(out, "summary.json")), run

    def steps(self) -> List[Tuple[str, Callable[[], bool], Callable[[], object]]]:
        # the segmenter first: the gan stage measures its samples with it after every growth phase. The pipelines'
        # sizes (samples, test-set pairs and scenes) are the config's data.* fields, read from config_flags.
        steps = [self._stage_step("segmenter", "scenes"), self._stage_step("gan", "scenes"),
                 self._pipeline_step("audio_clevrgan", "beam_pipelines.audio_clevrgan", "pairs",
                                     ["--workdir", self.workdir],
                                     splits=("train", "val", "test")),
                 self._pipeline_step("semantic_test_set", "beam_pipelines.semantic_test_set", "semantic", []),
                 self._pipeline_step("transfer_test_set", "beam_pipelines.transfer_test_set", "transfer",
                                     ["--split", "test"]),
                 self._pipeline_step("renderer_edits", "beam_pipelines.transfer_test_set", "renderer_edits",
                                     ["--split", "train"], splits=("train",))]
        steps += [self._stage_step(name, data) for name, data in STAGES]
        steps.append(("evaluate", lambda: False, self.evaluate))
        return steps

    def evaluate(self):
        from tfvgs import evaluate
        return evaluate.main(["--workdir", self.workdir, "--all", "--data_dir", self.data_dir("pairs"),
                              "--semantic_dir", self.data_dir("semantic"),
                              "--transfer_dir", self.data_dir("transfer"), *self.config_flags()])

    def run(self) -> dict:
        start = time.time()
        steps = self.steps()
        for index, (name, done, run) in enumerate(steps, 1):
            prefix = f"[all {index}/{len(steps)} {name}]"
            if done():
                print(f"{prefix} done already, skipped", flush=True)
                continue
            print(f"{prefix} starting ({(time.time() - start) / 60:.1f} min so far)", flush=True)
            run()
        report = os.path.join(self.workdir, "eval", "report.md")
        print(f"[all] finished in {(time.time() - start) / 60:.1f} min. Report: {report}; TensorBoard: "
              f"tensorboard --logdir {self.workdir}", flush=True)
        return {"minutes": (time.time() - start) / 60}
