"""Shared test settings: quiet TensorFlow and a tiny config fixture (the `slow` marker is declared in pytest.ini)."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture
def tiny_config():
    from tfvgs.config import get_config
    return get_config("tiny")
