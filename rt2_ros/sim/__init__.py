"""Closed-loop simulation for rt2_ros: a Franka Panda on a table with coloured blocks.

* :mod:`rt2_ros.sim.scene` - the PyBullet world (ROS-free): arm, table, blocks,
  camera, randomised layouts, ground truth.
* :mod:`rt2_ros.sim.servo_standin` - MoveIt Servo's twist pipeline (staleness,
  frame handling, singularity and joint-limit rules, status codes), ROS-free.
* :mod:`rt2_ros.sim.tasks` - instructions parsed into tasks and their success checks.
* :mod:`rt2_ros.sim.expert` - the scripted expert policy (ground truth in, RT-2 action
  text out).
* :mod:`rt2_ros.sim.world` - scene + Servo stand-in + task bookkeeping, stepped by the caller.
* :mod:`rt2_ros.sim.inprocess` - the closed loop without ROS, in simulated time (tests).
* :mod:`rt2_ros.sim.report` - episode records, the table, contact sheet and trajectory plot.
* :mod:`rt2_ros.sim.recording` - MCAP recording of serialised ROS 2 messages.
* :mod:`rt2_ros.sim.settings` - ``config/sim.yaml`` for ROS-free code.
* rclpy shells: :mod:`rt2_ros.sim.sim_node` (camera, joint states, end-effector pose,
  gripper, ``/sim/reset`` and a ``servo_node`` with MoveIt Servo's interface),
  :mod:`rt2_ros.sim.ground_truth_node` (the expert's ground truth inside the rt2 node),
  :mod:`rt2_ros.sim.driver_node` (the demo's episode runner).
* :mod:`rt2_ros.sim.demo` - ``rt2-ros demo`` / ``make demo``: episodes through real DDS,
  report table, contact sheet and trajectory plot.

Importing this package imports nothing heavy (no pybullet, rclpy or torch).
"""

#: ``policy.backend`` of the scripted expert (``config/sim.yaml``; ``--policies scripted``).
SCRIPTED_EXPERT = "rt2_ros.sim.expert:make_policy"
