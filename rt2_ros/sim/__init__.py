"""Closed-loop simulation: PyBullet Panda, MoveIt Servo stand-in, scripted expert, demo (nothing outside sim imports it)."""

#: ``policy.backend`` of the scripted expert (``config/sim.yaml``; ``--policies scripted``).
SCRIPTED_EXPERT = "rt2_ros.sim.expert:make_policy"
