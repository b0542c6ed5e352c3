"""Run rt2_ros.ros.node.main() with the scripted test policy (a child process in tests).

Usage: python test/run_scripted_node.py [--ros-args ...]. The model texts come from
RT2_TEST_TEXTS ("|"-separated; default: +1 cm along x per step).
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scripted_policy import ScriptedTextPolicy  # noqa: E402

from rt2_ros.action_tokenizer import make_codec  # noqa: E402
from rt2_ros.config import RT2Config  # noqa: E402
from rt2_ros.ros.node import main  # noqa: E402

if __name__ == "__main__":
    cfg = RT2Config()
    default = make_codec(cfg.action).encode([0.01, 0, 0, 0, 0, 0, 1.0])
    texts = (os.environ.get("RT2_TEST_TEXTS") or default).split("|")
    sys.exit(main(policy=ScriptedTextPolicy(cfg, texts)))
