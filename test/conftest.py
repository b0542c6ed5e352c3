"""Shared pytest setup for rt2_ros.

Tests run with the environment of scripts/run_tests.sh (venv + colcon install
sourced, HF_HUB_OFFLINE=1). Fixtures that build models live in fixtures_models.py.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_DIR = Path(__file__).resolve().parent
for p in (str(TEST_DIR),):
    if p not in sys.path:
        sys.path.insert(0, p)

# Nodes under test run in this process as rt2_ros.ros.node.main() runs them: with a 1 ms
# GIL switch interval, so the servo timer thread is not starved by the test's own
# threads (camera streamers, collectors, executors).
from rt2_ros.servo_stream import GIL_SWITCH_INTERVAL_S  # noqa: E402

sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)

# Model fixtures (tiny_model_dir, ...) for every test module.
pytest_plugins = ["fixtures_models"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
