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

Keras 3's `fit` does not run under this strategy as shipped (keras-team/keras#20585, tensorflow#72388): it reduces
the first batch across workers with an eager `strategy.reduce` that the collective strategy cannot do, and reduces
scalar logs with `axis=0`. `patch_keras_fit` replaces those two steps (building from the dataset's element spec;
reducing scalars without an axis). Our models log values already summed over all replicas, so
every reduction of them is exact.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

import tensorflow as tf

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
