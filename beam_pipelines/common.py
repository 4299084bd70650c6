"""What every tfvgs Beam pipeline shares: options with an offline default runner, counters, the dead-letter output
and the closing read / written / rejected reconciliation.

Runner: Beam's default local runner (Prism) downloads a binary on first use, which fails offline, so the default here
is the in-process DirectRunner. Pass `--runner DataflowRunner --project P --region R --temp_location gs://...
--setup_file ./setup.py` (plus any standard Dataflow option) to run on Google Cloud Dataflow; workers then install
this package from setup.py.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions

NAMESPACE = "tfvgs"
READ, WRITTEN, REJECTED = "read", "written", "rejected"
REJECTED_TAG = "rejected"


def parse_pipeline_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]
                        ) -> Tuple[argparse.Namespace, PipelineOptions]:
    """Splits argv into our flags and Beam's; defaults the runner to DirectRunner (works offline)."""
    known, beam_args = parser.parse_known_args(argv)
    options = PipelineOptions(beam_args)
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = "DirectRunner"
    options.view_as(SetupOptions).save_main_session = False
    return known, options


def check_local_espeak(options: PipelineOptions) -> None:
    """Fails before a local pipeline starts when espeak-ng is missing, with the install command. On a remote runner
    (Dataflow) the workers speak, so the launching machine needs no espeak-ng."""
    if options.view_as(StandardOptions).runner in ("DirectRunner", "direct"):
        from tfvgs import speech
        speech.check_espeak()


# Written items whose log-mel is longer than features.max_frames: kept, but cropped by the readers - counted so it
# is never silent.
LONGER_THAN_MAX_FRAMES = "longer_than_max_frames"


def counter(name: str):
    return Metrics.counter(NAMESPACE, name)


def rejection(item_id: str, step: str, reason: str, source: str = "") -> Dict[str, str]:
    """A dead-letter record: what was rejected, at which step, why, and from where."""
    return {"id": str(item_id), "step": step, "reason": reason, "source": source}


class Reject:
    """Emits a rejection to the dead-letter output and counts it (total and per step). The first `log_first`
    rejections of each worker's DoFn are also logged; the rest only go to rejected.jsonl and the counters (Audio
    CLEVRGAN rejects most GAN samples: logging each one made a demo log of 2 MB)."""

    def __init__(self, step: str, log_first: int = 5):
        self.step, self.log_first = step, int(log_first)
        self._total = counter(REJECTED)
        self._per_step = counter(f"{REJECTED}:{step}")
        self._logged = 0

    def __call__(self, item_id, reason: str, source: str = "") -> beam.pvalue.TaggedOutput:
        self._total.inc()
        self._per_step.inc()
        if self._logged < self.log_first:
            self._logged += 1
            more = (f" (further rejections at {self.step} are written to rejected.jsonl without a log line)"
                    if self._logged == self.log_first else "")
            logging.warning("rejected %s at %s: %s%s", item_id, self.step, reason, more)
        return beam.pvalue.TaggedOutput(REJECTED_TAG, rejection(item_id, self.step, reason, source))


class WriteRejected(beam.PTransform):
    """Dead-letter output: one JSON object per rejected item in <output_dir>/rejected.jsonl (always written, empty
    when nothing was rejected, so its absence never means 'nothing went wrong')."""

    def __init__(self, output_dir: str):
        super().__init__()
        self.output_dir = output_dir

    def expand(self, rejected):
        return (rejected
                | "RejectedToJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True))
                | "WriteRejectedJsonl" >> beam.io.WriteToText(os.path.join(self.output_dir, "rejected"),
                                                              file_name_suffix=".jsonl", num_shards=1,
                                                              shard_name_template=""))


class WriteSplitRecords(beam.PTransform):
    """Writes (split, serialized record) pairs as <output_dir>/<split>-SSSSS-of-NNNNN.tfrecord per split and counts
    them as written. A split with no records still gets its (empty) shard files."""

    def __init__(self, output_dir: str, splits: Sequence[str], num_shards: int):
        super().__init__()
        self.output_dir, self.splits, self.num_shards = output_dir, tuple(splits), num_shards

    def expand(self, keyed_records):
        written = counter(WRITTEN)

        def split_index(item, _num_partitions):
            return self.splits.index(item[0])

        def count(item):
            written.inc()
            return item[1]

        parts = keyed_records | "PartitionBySplit" >> beam.Partition(split_index, len(self.splits))
        results = []
        for split, part in zip(self.splits, parts):
            results.append(part
                           | f"Count_{split}" >> beam.Map(count)
                           | f"Write_{split}" >> beam.io.WriteToTFRecord(
                               os.path.join(self.output_dir, split), file_name_suffix=".tfrecord",
                               num_shards=self.num_shards))
        return results


def prepare_output_dir(output_dir: str, splits: Sequence[str], config) -> None:
    """What every pipeline does before its Beam graph runs: creates `output_dir`, removes an earlier run's shards
    of `splits` and dead letters (`clear_previous_outputs`), and saves the config the records are made with."""
    import tensorflow as tf
    tf.io.gfile.makedirs(output_dir)
    clear_previous_outputs(output_dir, splits)
    config.save(os.path.join(output_dir, "config.json"))


def clear_previous_outputs(output_dir: str, splits: Sequence[str]) -> None:
    """Removes shards and dead letters an earlier run left in output_dir: WriteToTFRecord never deletes them, and
    shards of a run with another shard count would otherwise be read together with the new ones."""
    import tensorflow as tf
    from tfvgs.shards import shard_pattern
    stale = [f for split in splits for f in tf.io.gfile.glob(shard_pattern(output_dir, split))]
    stale += tf.io.gfile.glob(os.path.join(output_dir, "rejected.jsonl"))
    for path in stale:
        tf.io.gfile.remove(path)
    if stale:
        print(f"removed {len(stale)} output file(s) of an earlier run in {output_dir}")


def query_counters(result) -> Dict[str, int]:
    """All counters of our namespace after the pipeline finished (committed where the runner has them)."""
    counts: Dict[str, int] = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        counts[c.key.metric.name] = counts.get(c.key.metric.name, 0) + int(value or 0)
    return counts


def reconcile(result, output_dir: str, pipeline_name: str, extra: Optional[Dict[str, Any]] = None
              ) -> Dict[str, Any]:
    """Prints read / written / rejected, writes <output_dir>/summary.json, and fails loudly if they do not add up."""
    import tensorflow as tf
    counts = query_counters(result)
    summary = {"pipeline": pipeline_name, READ: counts.get(READ, 0), WRITTEN: counts.get(WRITTEN, 0),
               REJECTED: counts.get(REJECTED, 0),
               "rejected_by_step": {k.split(":", 1)[1]: v for k, v in sorted(counts.items())
                                    if k.startswith(REJECTED + ":")},
               "counters": counts}
    summary.update(extra or {})
    summary["balanced"] = summary[READ] == summary[WRITTEN] + summary[REJECTED]
    tf.io.gfile.makedirs(output_dir)
    with tf.io.gfile.GFile(os.path.join(output_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
    print(f"[{pipeline_name}] read {summary[READ]} / written {summary[WRITTEN]} / rejected {summary[REJECTED]}"
          f" -> {output_dir}")
    if summary[REJECTED]:
        print(f"[{pipeline_name}] rejected items and reasons: {os.path.join(output_dir, 'rejected.jsonl')}")
    if counts.get(LONGER_THAN_MAX_FRAMES):
        print(f"[{pipeline_name}] note: {counts[LONGER_THAN_MAX_FRAMES]} of {summary[WRITTEN]} written items have "
              f"more log-mel frames than features.max_frames; training and evaluation use their first max_frames "
              f"frames (as paper 001 does), serving rejects such audio (counter {LONGER_THAN_MAX_FRAMES!r})")
    if not summary["balanced"]:
        raise RuntimeError(f"[{pipeline_name}] counts do not add up: read {summary[READ]} != written "
                           f"{summary[WRITTEN]} + rejected {summary[REJECTED]}. See {output_dir}/summary.json")
    return summary


def read_jsonl(path: str) -> List[Dict[str, Any]]:
    import tensorflow as tf
    with tf.io.gfile.GFile(path) as f:
        return [json.loads(line) for line in f if line.strip()]
