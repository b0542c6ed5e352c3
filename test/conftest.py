"""Shared pytest set-up for every layer of the rt2_ros tests.

Layers (each folder's conftest imports only what its layer needs):

* ``unit/`` - the ROS-free, torch-free core: runs in a plain venv with
  ``pip install -e .[test]`` (no rclpy, no torch).
* ``ml/`` - models: torch + transformers (tiny models built offline).
* ``remote/`` - remote inference over loopback: websockets + msgpack, no rclpy, no torch.
* ``ros/`` - the rclpy shell over real DDS.
* ``e2e/`` - the simulation: PyBullet, the rt2 node and the demo over DDS.

Shared helpers live in ``helpers/`` (put on ``sys.path`` here). Tests run with the
environment of scripts/run_tests.sh (venv + colcon install sourced, HF_HUB_OFFLINE=1).
"""

import os
import sys
from pathlib import Path

HELPERS = Path(__file__).resolve().parent / "helpers"
if str(HELPERS) not in sys.path:
    sys.path.insert(0, str(HELPERS))

# Model fixtures (tiny_model_dir, ...) by name in every layer; the module imports
# torch only inside the fixtures.
pytest_plugins = ["fixtures_models"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
