"""Bring the robot home (``/rt2/reset``): moveit_py when importable, else a std_srvs/Trigger service.

With ``moveit_py``: plan and execute to ``reset.home_named_state`` for
``reset.planning_group``. Without: call the std_srvs/Trigger service
``reset.reset_service`` (e.g. the simulation's ``/sim/reset``), created at start-up so
DDS discovers it long before the first reset (discovery here can take ~3 s,
``shared/docs/ros2-on-this-machine.md``).
"""

from __future__ import annotations

import threading

from rclpy.node import Node
from std_srvs.srv import Trigger

from rt2_ros.config import ResetConfig

__all__ = ["Homing", "moveit_py", "RESET_TIMEOUT_S", "RESET_DISCOVERY_TIMEOUT_S"]

#: Time allowed for the fallback reset service to answer [s].
RESET_TIMEOUT_S = 60.0
#: Time allowed for DDS to discover the fallback reset service [s] (first discovery
#: can take ~3 s on loopback here).
RESET_DISCOVERY_TIMEOUT_S = 5.0


def moveit_py():
    """``moveit.planning.MoveItPy`` or None when moveit_py is not importable."""
    try:  # pragma: no cover - moveit_py is not installable here
        from moveit.planning import MoveItPy  # type: ignore

        return MoveItPy
    except ImportError:
        return None


class Homing:
    """Moves the robot home; the node cancels the episode first.

    Args:
        node: the node that owns the service client.
        cfg: the ``reset`` section.
        callback_group: for the service client (must run while the caller waits: reentrant).
    """

    def __init__(self, node: Node, cfg: ResetConfig, callback_group=None):
        self.node, self.cfg, self.group = node, cfg, callback_group
        self._moveit = None
        self._client = None
        if cfg.reset_service and moveit_py() is None:
            self._client = node.create_client(Trigger, cfg.reset_service, callback_group=callback_group)

    def home(self) -> tuple[bool, str]:
        """Move home; returns ``(success, message)``, never raises. Blocks up to
        :data:`RESET_DISCOVERY_TIMEOUT_S` + :data:`RESET_TIMEOUT_S` (call it from a
        reentrant callback or a thread, not from the executor's only thread)."""
        r = self.cfg
        MoveItPy = moveit_py()
        if MoveItPy is not None:  # pragma: no cover - no moveit_py here
            try:
                if self._moveit is None:
                    self._moveit = MoveItPy(node_name=f"{self.node.get_name()}_moveit_py")
                arm = self._moveit.get_planning_component(r.planning_group)
                arm.set_start_state_to_current_state()
                arm.set_goal_state(configuration_name=r.home_named_state)
                plan = arm.plan()
                if not plan:
                    return False, f"planning to {r.home_named_state!r} failed"
                self._moveit.execute(plan.trajectory, controllers=[])
                return True, f"moved {r.planning_group} to {r.home_named_state!r}"
            except Exception as e:  # noqa: BLE001 - report any moveit_py failure
                return False, f"moveit_py reset failed: {e}"
        if not r.reset_service:
            return False, ("no reset available: moveit_py is not importable and reset.reset_service is empty")
        if self._client is None:
            self._client = self.node.create_client(Trigger, r.reset_service, callback_group=self.group)
        if not self._client.wait_for_service(timeout_sec=RESET_DISCOVERY_TIMEOUT_S):
            return False, (
                f"no reset available: moveit_py is not importable and {r.reset_service} "
                "(std_srvs/Trigger, reset.reset_service) is not offered"
            )
        done = threading.Event()
        fut = self._client.call_async(Trigger.Request())
        fut.add_done_callback(lambda f: done.set())
        if not done.wait(RESET_TIMEOUT_S):
            return False, f"{r.reset_service} did not answer within {RESET_TIMEOUT_S:.0f} s"
        try:
            res = fut.result()
        except Exception as e:  # noqa: BLE001
            return False, f"{r.reset_service} failed: {e}"
        return bool(res.success), f"{r.reset_service}: {res.message}"
