"""The simulator's experts as served policies (``rt2-ros serve --policy ...``), for the demo's
openpi runs: in the server's process there is no rt2 node and so no rclpy context; these
factories start a private one for the expert's ground-truth subscription
(:class:`rt2_ros.sim.ground_truth_node.GroundTruthSubscriber` on ``/sim/ground_truth``,
the ``ROS_DOMAIN_ID`` of the server's environment).

* ``rt2_ros.sim.served:make_expert`` - the scripted expert (:mod:`rt2_ros.sim.expert`);
* ``rt2_ros.sim.served:make_joint_expert`` - the joint-velocity expert
  (:mod:`rt2_ros.sim.joint_expert`, DROID's layout).
"""

from __future__ import annotations

import threading
from typing import Any

from rt2_ros.config import RT2Config

__all__ = ["make_expert", "make_joint_expert"]

_lock = threading.Lock()
_source: dict[str, Any] = {}


def _ground_truth():
    """The newest-ground-truth callable of a subscriber on a private rclpy context (made once)."""
    with _lock:
        if "sub" not in _source:
            import rclpy
            from rclpy.context import Context

            from rt2_ros.sim.expert import DEFAULT_GROUND_TRUTH_TOPIC
            from rt2_ros.sim.ground_truth_node import GroundTruthSubscriber

            ctx = Context()
            rclpy.init(context=ctx)
            _source["ctx"] = ctx
            _source["sub"] = GroundTruthSubscriber(DEFAULT_GROUND_TRUTH_TOPIC, context=ctx)
        return _source["sub"].latest


def make_expert(cfg: RT2Config, **kwargs: Any):
    """The scripted expert fed by ``/sim/ground_truth`` (for ``rt2-ros serve --policy``)."""
    from rt2_ros.sim.expert import ScriptedExpertPolicy

    return ScriptedExpertPolicy.from_config(cfg, ground_truth=_ground_truth(), **kwargs)


def make_joint_expert(cfg: RT2Config, **kwargs: Any):
    """The joint-velocity expert fed by ``/sim/ground_truth`` (for ``rt2-ros serve --policy``)."""
    from rt2_ros.sim.joint_expert import make_policy

    return make_policy(cfg, ground_truth=_ground_truth(), **kwargs)
