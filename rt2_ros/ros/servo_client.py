"""MoveIt Servo bring-up for the rt2 node (rclpy): enable, pause, watch ``~/status``.

MoveIt Servo ignores twists until it is told to expect them
(``shared/docs/rt2-reference.md``, MoveIt Servo table; upstream
``moveit_ros/moveit_servo/src/servo_node.cpp``). The interface itself (services per
distro, status and halt codes, command types, which generation ``servo.distro: auto``
means) is data in :mod:`rt2_ros.servo_interface`, shared with the simulation's
stand-in. A halt code while an episode runs ends it as a fault.

Every call is asynchronous (never blocks a callback). A missing service or message
package is a logged warning that says how to fix it, never an exception.
"""

from __future__ import annotations

from typing import Callable

from rclpy.node import Node
from std_srvs.srv import SetBool, Trigger

from rt2_ros.config import ServoConfig
from rt2_ros.servo_interface import HALT_CODES, CommandType, resolve_distro

__all__ = ["ServoClient", "HAVE_MOVEIT_MSGS"]

try:  # moveit_msgs: a ROS install, or the ros2-tools kit (scripts/bootstrap.sh)
    from moveit_msgs.msg import ServoStatus  # type: ignore
    from moveit_msgs.srv import ServoCommandType  # type: ignore

    HAVE_MOVEIT_MSGS = True
except ImportError:
    ServoStatus = ServoCommandType = None
    HAVE_MOVEIT_MSGS = False


def _join(ns: str, name: str) -> str:
    return ns.rstrip("/") + "/" + name


class ServoClient:
    """Enable/pause MoveIt Servo and turn its halt status into an episode fault.

    Args:
        node: the rt2 node (clients and the status subscription are created on it).
        cfg: the ``servo`` section (``namespace``, ``distro``).
        on_halt: called with a description when Servo reports a halt code.
        callback_group: group for the clients and the status subscription (must
            let their callbacks run while others run: a reentrant group).
    """

    def __init__(self, node: Node, cfg: ServoConfig, on_halt: Callable[[str], None], callback_group=None):
        self.node = node
        self.cfg = cfg
        self.ns = cfg.namespace if cfg.namespace.startswith("/") else "/" + cfg.namespace
        self.on_halt = on_halt
        self.group = callback_group
        self.log = node.get_logger()
        self._auto = cfg.distro == "auto"
        self.distro = ""
        self._clients: dict[str, object] = {}
        self._status_sub = None
        self._started = False
        self._paused = False
        self._warned: set[str] = set()
        self.last_status: tuple[int, str] | None = None
        self.calls: list[str] = []  # service names called, oldest first (for diagnostics)
        #: The command type :meth:`enable` selects on Jazzy (TWIST; JOINT_JOG for joint-space policies).
        self.command_type = CommandType.TWIST
        self._setup(resolve_distro(cfg.distro, HAVE_MOVEIT_MSGS))

    # -- set-up ------------------------------------------------------------------------
    def _setup(self, distro: str) -> None:
        for c in self._clients.values():
            self.node.destroy_client(c)
        if self._status_sub is not None:
            self.node.destroy_subscription(self._status_sub)
            self._status_sub = None
        self.distro, self._clients = distro, {}
        mk = lambda srv, name: self.node.create_client(srv, _join(self.ns, name), callback_group=self.group)  # noqa: E731
        if distro == "humble":
            from std_msgs.msg import Int8

            self._clients = {n: mk(Trigger, n) for n in ("start_servo", "pause_servo", "unpause_servo")}
            self._status_sub = self.node.create_subscription(
                Int8,
                _join(self.ns, "status"),
                lambda m: self._on_status(int(m.data), ""),
                10,
                callback_group=self.group,
            )
        else:
            self._clients["pause_servo"] = mk(SetBool, "pause_servo")
            if HAVE_MOVEIT_MSGS:
                self._clients["switch_command_type"] = mk(ServoCommandType, "switch_command_type")
                self._status_sub = self.node.create_subscription(
                    ServoStatus,
                    _join(self.ns, "status"),
                    lambda m: self._on_status(int(m.code), m.message),
                    10,
                    callback_group=self.group,
                )
            else:
                self._warn_once(
                    "no_moveit_msgs",
                    f"moveit_msgs is not importable: cannot call {_join(self.ns, 'switch_command_type')} "
                    f"or read {_join(self.ns, 'status')}. Install moveit_msgs (rosdep install --from-paths src "
                    "-y), or switch Servo to twists yourself once: ros2 service call "
                    f"{_join(self.ns, 'switch_command_type')} moveit_msgs/srv/ServoCommandType "
                    '"{command_type: 1}"',
                )

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.log.warning(text)

    def _detect(self) -> None:
        """With ``distro: auto``, follow the interface the running Servo offers."""
        if not self._auto:
            return
        try:
            names = {n for n, _ in self.node.get_service_names_and_types()}
        except Exception:  # noqa: BLE001 - graph query failed: keep the current guess
            return
        if _join(self.ns, "start_servo") in names and self.distro != "humble":
            self.log.info(f"MoveIt Servo at {self.ns} offers start_servo: using the Humble interface")
            self._setup("humble")
        elif _join(self.ns, "switch_command_type") in names and self.distro != "jazzy":
            self.log.info(f"MoveIt Servo at {self.ns} offers switch_command_type: using the Jazzy interface")
            self._setup("jazzy")

    # -- calls -------------------------------------------------------------------------
    def _call(self, name: str, request) -> bool:
        client = self._clients.get(name)
        if client is None:
            return False
        srv = _join(self.ns, name)
        if not client.service_is_ready():
            self._warn_once(
                "missing:" + name,
                f"MoveIt Servo service {srv} is not available, so Servo may ignore the twists. "
                f"Fix: start servo_node under {self.ns}, or set servo.namespace to where it runs "
                f"(servo.distro={self.cfg.distro}, using the {self.distro} interface).",
            )
            return False
        self.calls.append(srv)
        fut = client.call_async(request)

        def done(f, srv=srv):
            try:
                res = f.result()
            except Exception as e:  # noqa: BLE001 - report, never raise in a callback
                self.log.warning(f"{srv} failed: {e}")
                return
            if res is not None and hasattr(res, "success") and not res.success:
                self.log.warning(f"{srv} answered failure: {getattr(res, 'message', '')}")

        fut.add_done_callback(done)
        return True

    def enable(self) -> None:
        """Make Servo accept this node's commands (call when an episode starts). Never blocks.

        Jazzy: ``~/switch_command_type`` to :attr:`command_type` (TWIST, or JOINT_JOG for
        joint-space policies). Humble: ``~/start_servo`` (Humble's Servo then takes twists
        and JointJog alike, the newest kind wins)."""
        self._detect()
        if self.distro == "humble":
            if self._paused and self._call("unpause_servo", Trigger.Request()):
                self._paused = False
            if not self._started and self._call("start_servo", Trigger.Request()):
                self._started = True
            return
        if self._paused and self._call("pause_servo", SetBool.Request(data=False)):
            self._paused = False
        if HAVE_MOVEIT_MSGS:
            self._call("switch_command_type", ServoCommandType.Request(command_type=int(self.command_type)))

    def pause(self) -> None:
        """Pause Servo (after a stop, once the zero twists went out). Never blocks."""
        if self._paused or (self.distro == "humble" and not self._started):
            return
        req = Trigger.Request() if self.distro == "humble" else SetBool.Request(data=True)
        if self._call("pause_servo", req):
            self._paused = True

    # -- status ------------------------------------------------------------------------
    def _on_status(self, code: int, message: str) -> None:
        prev = self.last_status
        self.last_status = (code, message)
        name = HALT_CODES.get(self.distro, {}).get(code)
        if name is not None:
            self.on_halt(f"MoveIt Servo halted: {name} ({code}){': ' + message if message else ''}")
        elif code == -1 and (prev is None or prev[0] != -1):
            self.log.warning(f"MoveIt Servo status INVALID{': ' + message if message else ''}")

    def destroy(self) -> None:
        """Destroy the service clients and the status subscription."""
        for c in self._clients.values():
            self.node.destroy_client(c)
        if self._status_sub is not None:
            self.node.destroy_subscription(self._status_sub)
        self._clients, self._status_sub = {}, None
