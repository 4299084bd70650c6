"""Training on 2 worker processes (MultiWorkerMirroredStrategy over 127.0.0.1) matches 1 process, and resumes after a
worker is killed (issue 18).

Each worker is `python -m tfvgs.train` with its own TF_CONFIG, as on a cluster. DATA sharding
(`data.worker_sharding=data`) gives a step the very global batch one process sees, so the runs differ only in the
order float32 sums are taken across workers (gradient all-reduce, synchronized BatchNorm): we require
|a - b| <= 1e-5 + 1e-4 |b|, the tolerance of tests/test_distributed.py (2 replicas in one process), and check that
training moved the weights by far more than that. FILE sharding (the default when a split has as many shards as workers, as the tiny world's 2
do) gives every worker its own shards, so it is checked against itself: killed and resumed, it ends where the
uninterrupted run does.

Slow (each run starts 2-3 TensorFlow processes): `make test-all`.
"""
import glob
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import sigkill_when

pytestmark = pytest.mark.slow

RTOL, ATOL = 1e-4, 1e-5
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def train_command(data_dir, workdir, steps, strategy, stage="davenet", sharding="data"):
    return [sys.executable, "-m", "tfvgs.train", "--stage", stage, "--config", "tiny", "--data_dir", data_dir,
            "--workdir", workdir, "--set", f"train.steps={steps}", "--set", "train.checkpoint_every=2",
            "--set", f"segmenter.steps={steps}", "--set", "segmenter.checkpoint_every=2",
            "--set", f"train.strategy={strategy}", "--set", f"data.worker_sharding={sharding}"]


def env(tf_config=None):
    e = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="2")
    e.pop("TF_CONFIG", None)
    if tf_config is not None:
        e["TF_CONFIG"] = tf_config
    return e


def start_workers(data_dir, workdir, steps, tmp_path, tag, stage="davenet", sharding="data"):
    ports = free_ports(2)
    cluster = [f"127.0.0.1:{p}" for p in ports]
    procs = []
    for index in range(2):
        tf_config = ('{"cluster": {"worker": %s}, "task": {"type": "worker", "index": %d}}'
                     % (str(cluster).replace("'", '"'), index))
        log = open(tmp_path / f"{tag}-worker{index}.log", "w")
        command = train_command(data_dir, workdir, steps, "multi_worker", stage, sharding)
        procs.append(subprocess.Popen(command, cwd=ROOT, env=env(tf_config), stdout=log, stderr=subprocess.STDOUT))
    return procs


def wait_all(procs, tmp_path, tag, timeout=600):
    for index, proc in enumerate(procs):
        proc.wait(timeout=timeout)
        log = (tmp_path / f"{tag}-worker{index}.log").read_text()
        assert proc.returncode == 0, f"worker {index} failed:\n{log[-4000:]}"


def weights(workdir):
    from tfvgs import workdir as layout
    return [np.asarray(w) for w in layout.load_step_model(workdir, "davenet").weights]


@pytest.fixture(scope="module")
def single_runs(tiny_world, tmp_path_factory):
    """One process, default strategy: 4 steps and 6 steps (the references)."""
    root = tmp_path_factory.mktemp("single")
    runs = {}
    for steps in (4, 6):
        workdir = str(root / f"w{steps}")
        subprocess.run(train_command(tiny_world["pairs"], workdir, steps, "default"), cwd=ROOT, env=env(),
                       check=True, capture_output=True, timeout=600)
        runs[steps] = workdir
    return runs


def test_two_workers_train_like_one_process(tiny_world, single_runs, tmp_path):
    workdir = str(tmp_path / "w")
    wait_all(start_workers(tiny_world["pairs"], workdir, 4, tmp_path, "run"), tmp_path, "run")
    one, two = weights(single_runs[4]), weights(workdir)
    assert len(one) == len(two)
    for a, b in zip(one, two):
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL)
    # only the chief wrote the stage's files; the other worker's temporary checkpoint folders are gone
    stage = os.path.join(workdir, "davenet")
    assert os.path.exists(os.path.join(stage, "done.json")) and os.path.exists(os.path.join(stage, "config.json"))
    assert not glob.glob(os.path.join(stage, "**", ".worker-*"), recursive=True)
    log = (tmp_path / "run-worker1.log").read_text()
    assert "model saved" not in log and "2 replica(s)" in log


def test_training_moves_the_weights_far_more_than_the_tolerance(single_runs):
    four, six = weights(single_runs[4]), weights(single_runs[6])
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(four, six))
    assert moved > 100 * ATOL, f"2 more steps barely moved the weights ({moved}): the comparisons would be vacuous"


def test_a_killed_worker_resumes_from_the_chiefs_checkpoint(tiny_world, single_runs, tmp_path):
    """Worker 1 is SIGKILLed once the chief has saved step 2; the chief, left waiting in a collective, is stopped too
    (a cluster scheduler restarts the whole job); the same two commands then finish from step 2, and the result is
    the uninterrupted 6-step run."""
    workdir = str(tmp_path / "w")
    checkpoints = os.path.join(workdir, "davenet", "checkpoints")
    procs = start_workers(tiny_world["pairs"], workdir, 6, tmp_path, "first")
    sigkill_when(procs[1], lambda: bool(glob.glob(os.path.join(checkpoints, "ckpt-2.index"))), timeout=300)
    procs[0].kill()
    procs[0].wait()
    assert not os.path.exists(os.path.join(workdir, "davenet", "model.keras"))
    wait_all(start_workers(tiny_world["pairs"], workdir, 6, tmp_path, "again"), tmp_path, "again")
    assert "resumed from" in (tmp_path / "again-worker1.log").read_text()
    for a, b in zip(weights(single_runs[6]), weights(workdir)):
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL)


def test_file_sharded_workers_resume_where_the_uninterrupted_run_ends(tiny_world, tmp_path):
    """auto picks FILE sharding for 2 shards and 2 workers; each worker's stream is resumed by its own skip count
    (tfvgs.data.per_worker), so a run killed after step 2 and restarted ends on the uninterrupted run's weights."""
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    wait_all(start_workers(tiny_world["pairs"], whole, 6, tmp_path, "whole", sharding="auto"), tmp_path, "whole")
    assert "FILE sharding: each of 2 workers" in (tmp_path / "whole-worker0.log").read_text()
    checkpoints = os.path.join(killed, "davenet", "checkpoints")
    procs = start_workers(tiny_world["pairs"], killed, 6, tmp_path, "first", sharding="auto")
    sigkill_when(procs[1], lambda: bool(glob.glob(os.path.join(checkpoints, "ckpt-2.index"))), timeout=300)
    procs[0].kill()
    procs[0].wait()
    wait_all(start_workers(tiny_world["pairs"], killed, 6, tmp_path, "again", sharding="auto"), tmp_path, "again")
    assert "resumed from" in (tmp_path / "again-worker1.log").read_text()
    for a, b in zip(weights(whole), weights(killed)):
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL)


def test_the_segmenter_trains_on_two_workers(tiny_world, tmp_path):
    """Another train_step (Keras-compiled losses and metrics) under the same strategy. Not compared with one process:
    its foreground-masked losses are means over each replica's own pixels, so any data-parallel run (MirroredStrategy
    too) weighs the pixels of a batch slightly differently from one device."""
    workdir = str(tmp_path / "w")
    wait_all(start_workers(tiny_world["scenes"], workdir, 4, tmp_path, "seg", stage="segmenter"), tmp_path, "seg")
    stage = os.path.join(workdir, "segmenter")
    assert os.path.exists(os.path.join(stage, "model.keras")) and os.path.exists(os.path.join(stage, "eval.json"))
    assert "model saved" in (tmp_path / "seg-worker0.log").read_text()
    assert "model saved" not in (tmp_path / "seg-worker1.log").read_text()
    assert not glob.glob(os.path.join(stage, "**", ".worker-*"), recursive=True)


@pytest.mark.parametrize("stage", ["gan", "cluster"])
def test_steps_that_own_their_loop_refuse_several_workers_at_once(tiny_world, tmp_path, stage):
    """Before the strategy is built (building it waits for every worker): one clear error, not a hang."""
    tf_config = '{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}'
    command = [sys.executable, "-m", "tfvgs.train", "--stage", stage, "--config", "tiny",
               "--data_dir", tiny_world["scenes"], "--workdir", str(tmp_path / "w")]
    proc = subprocess.run(command, cwd=ROOT, env=env(tf_config), capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert f"The {stage} step runs on one machine" in proc.stderr and "train.strategy=default" in proc.stderr
