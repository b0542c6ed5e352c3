"""One ``main()`` scaffold for every node process of the package (rt2 node, simulation).

:func:`run_nodes` initialises rclpy with our own SIGINT/SIGTERM handlers, installed
whatever the parent left (rclpy's would shut the context down before the final zero
twist could leave; Python installs none for a SIGINT inherited as ignored), builds the
nodes, spins them on a ``MultiThreadedExecutor`` until Ctrl-C / SIGTERM, then runs
the shutdown hooks (the rt2 node's final zero twist) while the context is still
valid, and tears everything down; further SIGINT/SIGTERM are ignored during that
(a terminal's Ctrl-C plus the one ros2 launch forwards would otherwise cut it short). Exit codes: 0 clean shutdown; a start-up error
maps to the code its caller chose (the rt2 node: 1 the policy could not be built,
2 invalid parameters).
"""

from __future__ import annotations

import signal
import sys
from typing import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

__all__ = ["NodeSet", "StartError", "run_nodes"]


class NodeSet:
    """What a node process builds: its nodes and hooks (filled by the ``build`` callback).

    Attributes:
        nodes: spun by the executor, destroyed in reverse order at the end.
        on_start: called once the executor holds the nodes (start threads, log ready).
        on_stop: called at shutdown before the executor stops, context still valid
            (stop threads, final zero twist).
    """

    def __init__(self):
        self.nodes: list[Node] = []
        self.on_start: list[Callable[[], None]] = []
        self.on_stop: list[Callable[[], None]] = []

    def add(self, node: Node) -> Node:
        """Register ``node`` (as soon as it exists, so a later failure still destroys it)."""
        self.nodes.append(node)
        return node


#: (exception types, exit code, log line for the exception) for start-up failures.
StartError = tuple[tuple[type[BaseException], ...], int, Callable[[BaseException], str]]


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_nodes(
    name: str,
    build: Callable[[NodeSet], None],
    *,
    argv: Sequence[str] | None = None,
    num_threads: int = 4,
    start_errors: Sequence[StartError] = (),
) -> int:
    """Run the nodes ``build`` creates until Ctrl-C / SIGTERM; returns the exit code.

    Args:
        name: logger name for start-up errors.
        build: creates the nodes (``NodeSet.add``) and hooks; may raise.
        argv: command line (ROS arguments after ``--ros-args``); default ``sys.argv``.
        num_threads: executor threads.
        start_errors: exceptions of ``build`` that end the process with a code and an
            error line instead of a traceback, first match wins.

    Returns:
        0 after a clean shutdown, else the code of the matching ``start_errors`` entry.
    """
    argv = list(sys.argv if argv is None else argv)
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    # Our own SIGINT handler too: a process that inherited SIGINT as ignored (``cmd &`` from a
    # non-interactive shell, some supervisors) gets none from Python, and Ctrl-C would do nothing.
    old_int = signal.signal(signal.SIGINT, _raise_interrupt)
    ns = NodeSet()
    executor = None
    try:
        try:
            build(ns)
        except tuple(t for types, _, _ in start_errors for t in types) as e:
            for types, code, text in start_errors:
                if isinstance(e, types):
                    rclpy.logging.get_logger(name).error(text(e))
                    return code
            raise  # pragma: no cover - matched one of the types above
        executor = MultiThreadedExecutor(num_threads=num_threads)
        for n in ns.nodes:
            executor.add_node(n)
        for f in ns.on_start:
            f()
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # Ctrl-C in a terminal reaches every process of the group, and ros2 launch then
        # forwards its own SIGINT: a second signal must not cut the shutdown hooks short
        # (the final zero twist). Launch escalates to SIGKILL if we ever hang here.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for f in ns.on_stop:
            f()
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        for n in reversed(ns.nodes):
            n.destroy_node()
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        rclpy.try_shutdown()
    return 0
