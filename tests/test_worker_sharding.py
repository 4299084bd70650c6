"""FILE sharding of a training split across workers (issue 18): each worker reads its own shard files at its part of
the global batch, every pair reaches exactly one worker, and a resumed worker skips what it had read. The 2-process
run itself is in tests/test_multi_worker.py (slow)."""
import numpy as np
import pytest

from tests.test_schema_data import make_pair, write_shards
from tfvgs import data, multi_worker


def stream_ids(ds, batches=None):
    ds = ds if batches is None else ds.take(batches)
    return [[pid.decode() for pid in batch["pair_id"].numpy()] for batch in ds]


@pytest.fixture
def four_shards(tmp_path):
    write_shards(str(tmp_path / "train"), [make_pair(i, 20 + 9 * i)[0] for i in range(24)], num_shards=4)
    return str(tmp_path)


@pytest.mark.parametrize("bucket_frames", [0, 64])
def test_every_pair_reaches_exactly_one_worker_at_its_part_of_the_batch(four_shards, tiny_config, bucket_frames):
    seen = []
    for index in range(2):
        worker = data.WorkerShard(index, 2)
        batches = stream_ids(data.pairs_dataset(four_shards, "train", tiny_config, 4, training=True, seed=1,
                                                bucket_frames=bucket_frames, worker=worker, drop_remainder=False))
        assert all(len(b) <= 2 for b in batches) and max(len(b) for b in batches) == 2   # 4 global rows / 2
        seen.append([pid for b in batches for pid in b])
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1], key=lambda p: int(p[1:])) == [f"p{i}" for i in range(24)]
    # worker 0 reads shards 0 and 2, which hold the records i with i % 4 in {0, 2}
    assert {int(p[1:]) % 4 for p in seen[0]} == {0, 2}


@pytest.mark.parametrize("bucket_frames", [0, 64])
def test_a_resumed_worker_skips_its_own_part_of_the_steps_done(four_shards, tiny_config, bucket_frames):
    """Resuming at step 3 of a global batch of 4 skips 3 * 4 global records: 6 of this worker's stream, its 3
    batches of 2."""
    worker = data.WorkerShard(1, 2)

    def ids(skip_steps):
        return stream_ids(data.pairs_dataset(four_shards, "train", tiny_config, 4, training=True, repeat=True,
                                             seed=2, skip_examples=4 * skip_steps, bucket_frames=bucket_frames,
                                             worker=worker), batches=8)

    full = ids(0)
    assert ids(3)[:5] == full[3:8]
    assert ids(3)[0] != full[0]


def test_a_worker_with_several_devices_reads_one_replicas_batch_at_a_time(four_shards, tiny_config):
    """2 workers x 2 devices, global batch 8: batches of 2, a step is two of them (4 of this worker's records), so
    resuming at step 2 starts at this worker's batch 4."""
    worker = data.WorkerShard(0, 2, replicas=2)

    def ids(skip_steps):
        return stream_ids(data.pairs_dataset(four_shards, "train", tiny_config, 8, training=True, repeat=True,
                                             seed=0, skip_examples=8 * skip_steps, worker=worker), batches=8)

    full = ids(0)
    assert all(len(b) == 2 for b in full)
    assert ids(2)[:4] == full[4:8]


def test_the_sharding_policy(tiny_config):
    assert tiny_config.data.worker_sharding == "auto"
    assert multi_worker.shards_by_file("auto", 8, 2) and multi_worker.shards_by_file("auto", 2, 2)
    assert not multi_worker.shards_by_file("auto", 1, 2)           # fewer shards than workers: by data
    assert not multi_worker.shards_by_file("data", 8, 2)
    assert not multi_worker.shards_by_file("file", 8, 1)           # one process reads everything
    with pytest.raises(ValueError, match="at least as many train shards as workers. Received: 1 shard"):
        multi_worker.shards_by_file("file", 1, 2)
    with pytest.raises(ValueError, match="worker_sharding must be one of .* Received: 'files'"):
        multi_worker.shards_by_file("files", 8, 2)


def test_bad_worker_shards_are_named(four_shards, tiny_config):
    with pytest.raises(ValueError, match="multiple of the 2 replicas. Received: batch_size=3"):
        data.pairs_dataset(four_shards, "train", tiny_config, 3, training=True, worker=data.WorkerShard(0, 2))
    with pytest.raises(ValueError, match="4 shard\\(s\\) for 8 workers. Received: worker 5"):
        data.pairs_dataset(four_shards, "train", tiny_config, 8, training=True, worker=data.WorkerShard(5, 8))
    np.testing.assert_equal(data.per_worker(8, 24, None), (8, 24))
