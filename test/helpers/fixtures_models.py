"""Session-scoped model fixtures shared by test files.

conftest.py lists this module in ``pytest_plugins``, so every test module can ask for
these fixtures by name. The tiny
test model (random-weight PaliGemma architecture with RT-2 number tokens, see
``rt2_ros.testing.make_model``) is built once per test session, offline, in a
temporary directory; building takes about a second after torch is imported.
Its config overrides come from ``rt2_ros.testing.make_model.policy_overrides``.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of the tiny test model (``make_test_model(dir, "tiny", seed=0)``).

    Treat it as read-only: other tests share it. Copy it before modifying.
    """
    from rt2_ros.testing.make_model import make_test_model

    return make_test_model(tmp_path_factory.mktemp("tiny_model"), size="tiny", seed=0)


@pytest.fixture(scope="session")
def openvla_test_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of the tiny OpenVLA-layout test model (``make_test_model(dir, format="openvla")``),
    run with ``policy_overrides(dir, "openvla")``. Read-only, shared."""
    from rt2_ros.testing.make_model import make_test_model

    return make_test_model(tmp_path_factory.mktemp("openvla_test_model"), format="openvla", seed=0)
