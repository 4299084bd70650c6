"""Training on several machines: `tf.distribute.MultiWorkerMirroredStrategy` from TF_CONFIG, who writes what, and two
fixes Keras 3 needs for it.

Every worker runs the same command with its own TF_CONFIG (the TF guide's cluster spec), e.g. on two hosts

    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}'
    python -m tfvgs.train --stage davenet ... --set train.strategy=multi_worker      # index 1 on host1

`train.strategy=auto` picks this strategy by itself when TF_CONFIG names more than one task. The workdir must be a
path all workers see (a shared file system or gs://). The chief (the "chief" task, else worker 0) writes the
stage's files (config.json, model.keras, TensorBoard, done.json) and its checkpoints; the others save theirs, as the
TF guide asks (saving takes part in collectives), to a temporary folder that is deleted right after, and every
worker restores from the chief's checkpoints. After a worker is killed, restart every worker with the same commands:
they resume from the chief's last checkpoint on the same data order.

The training split reaches the workers one of two ways (`data.worker_sharding`, `shards_by_file`): by file, each
worker reading its own shard files at batch_size / workers (1/W of the input work each; what a cluster wants), or by
data, every worker reading every file and keeping its part of each global batch (a step then sees the very batch one
process sees, which is how tests/test_multi_worker.py checks the strategy against one process). Either way a step's
impostors and edited negatives are drawn over the global batch, and a resumed run skips what its workers had read.

Keras 3's `fit` does not run under this strategy as shipped (keras-team/keras#20585, tensorflow#72388): it reduces
the first batch across workers with an eager `strategy.reduce` that the collective strategy cannot do, and reduces
scalar logs with `axis=0`. `patch_keras_fit` replaces those two steps (building from the dataset's element spec;
reducing scalars without an axis). Our models log values already summed over all replicas, so
every reduction of them is exact.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, Optional

import tensorflow as tf

from tfvgs.data import WorkerShard

WORKER_TEMP_PREFIX = ".worker-"


def cluster_from_env() -> Optional[Dict[str, Any]]:
    """TF_CONFIG as a dict, or None when it is unset or names a single task. Raises ValueError for a TF_CONFIG that
    is not the JSON the TF guide describes."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        spec = json.loads(raw)
        tasks = sum(len(addresses) for addresses in spec["cluster"].values())
        spec["task"]["type"], spec["task"]["index"]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"TF_CONFIG must be JSON like {{\"cluster\": {{\"worker\": [\"host:port\", ...]}}, "
                         f"\"task\": {{\"type\": \"worker\", \"index\": 0}}}}. Received: {raw[:200]!r}") from e
    return spec if tasks > 1 else None


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the shared files: always, except on the non-chief workers of a multi-worker
    strategy (the chief is the "chief" task, else worker 0)."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief" or task_type is None:
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """Processes that train (the chief and the workers of TF_CONFIG); 1 without a multi-worker strategy."""
    if not is_multi_worker(strategy):
        return 1
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return len(spec.get("chief", [])) + len(spec.get("worker", []))


SHARDING_POLICIES = ("auto", "file", "data")


def shards_by_file(policy: str, num_shards: int, workers: int) -> bool:
    """Whether a training split of `num_shards` files is split by file across `workers` processes (module
    docstring): "auto" when there are at least as many shards as workers, "file" always (an error with fewer shards
    than workers), "data" never; always False for one process."""
    if policy not in SHARDING_POLICIES:
        raise ValueError(f"data.worker_sharding must be one of {SHARDING_POLICIES}. Received: {policy!r}")
    if workers == 1 or policy == "data":
        return False
    if num_shards >= workers:
        return True
    if policy == "file":
        raise ValueError(f"data.worker_sharding=file needs at least as many train shards as workers. Received: "
                         f"{num_shards} shard(s) for {workers} workers (use auto or data, or write more shards)")
    return False


def distribute_by_file(strategy: tf.distribute.Strategy,
                       make_dataset: Callable[[WorkerShard], tf.data.Dataset]) -> tf.distribute.DistributedDataset:
    """Each worker's own pipeline, `make_dataset(WorkerShard(worker, workers))`, as one distributed dataset that
    Keras' `fit` takes as it is (no tf.data auto-sharding on top)."""
    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        workers = context.num_input_pipelines
        return make_dataset(WorkerShard(context.input_pipeline_id, workers, context.num_replicas_in_sync // workers))
    return strategy.distribute_datasets_from_function(dataset_fn)


def write_dir(directory: str, strategy: tf.distribute.Strategy) -> str:
    """Where this process saves what belongs in `directory`: itself on the chief, a per-worker temporary folder
    beside it elsewhere (deleted with `remove_worker_dir` after each save)."""
    if is_chief(strategy):
        return directory
    return os.path.join(directory, f"{WORKER_TEMP_PREFIX}{strategy.cluster_resolver.task_id}")


def remove_worker_dir(directory: str, strategy: tf.distribute.Strategy) -> None:
    if not is_chief(strategy) and tf.io.gfile.exists(directory):
        tf.io.gfile.rmtree(directory)


def build() -> tf.distribute.MultiWorkerMirroredStrategy:
    """The strategy of TF_CONFIG's cluster, with Keras' fit patched to run under it."""
    patch_keras_fit()
    return tf.distribute.MultiWorkerMirroredStrategy()


_PATCHED = False


def patch_keras_fit() -> None:
    """Makes Keras 3's TensorFlow trainer run `fit` under MultiWorkerMirroredStrategy (module docstring). Idempotent;
    other strategies take the original code paths."""
    global _PATCHED
    if _PATCHED:
        return
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_reduce = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not is_multi_worker(strategy):
            return original_reduce(values, strategy, reduction)

        def reduce(value):
            if not isinstance(value, tf.distribute.DistributedValues) and not tf.is_tensor(value):
                return value
            local = strategy.experimental_local_results(value)[0] if not tf.is_tensor(value) else value
            return strategy.reduce("MEAN", value, axis=None if local.shape.rank == 0 else 0)
        return tree.map_structure(reduce, values)

    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None or not is_multi_worker(self._distribute_strategy) or iterator is None:
            return original_build(self, iterator=iterator, data_batch=data_batch)
        # The build needs shapes and dtypes only: the dataset's element spec, not a batch. Drawing a batch would
        # start an iteration of the dataset, and a seeded shuffle with reshuffle_each_iteration gives the training
        # iteration that follows another order than one process sees.
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=iterator.data_adapter.get_tf_dataset().element_spec)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    _PATCHED = True
