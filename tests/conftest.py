"""Shared test settings: quiet TensorFlow and a tiny config fixture (the `slow` marker is declared in pytest.ini)."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture
def tiny_config():
    from tfvgs.config import get_config
    return get_config("tiny")


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A tiny built-in world made by the real pipelines once per test session: {"scenes": dir, "pairs": dir}."""
    from beam_pipelines import render_scenes, spoken_captions
    root = tmp_path_factory.mktemp("tiny_world")
    scenes, pairs = str(root / "scenes"), str(root / "pairs")
    render_scenes.run(["--output_dir", scenes, "--num_scenes", "40", "--config", "tiny"])
    spoken_captions.run(["--scenes_dir", scenes, "--output_dir", pairs, "--config", "tiny"])
    return {"scenes": scenes, "pairs": pairs}


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory):
    """`tfvgs.demo` run once on the tiny preset (render, every curriculum step, export, report):
    {"workdir", "console", "scenes"}. Tests must not modify the workdir (copy what they train on)."""
    import contextlib
    import io

    from tfvgs import demo
    workdir = str(tmp_path_factory.mktemp("tiny_demo") / "w")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        demo.run(["--workdir", workdir, "--config", "tiny"])      # the preset as shipped, no --set
    return {"workdir": workdir, "console": out.getvalue(), "scenes": os.path.join(workdir, "data", "scenes")}


def sigkill_when(proc, condition, timeout: float) -> None:
    """SIGKILLs `proc` as soon as `condition()` holds (checked while waiting on the process itself, so the test
    never sleeps); fails if the process ends first or the condition does not come within `timeout` seconds."""
    import os
    import signal
    import subprocess
    import time
    deadline = time.monotonic() + timeout
    try:
        while not condition():
            assert time.monotonic() < deadline, f"condition not reached within {timeout} s"
            try:
                proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError("the process ended before it could be killed")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
