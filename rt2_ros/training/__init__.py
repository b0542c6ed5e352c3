"""Teach the arm: recordings -> LeRobot-format dataset -> fine-tuned RT-2 policy (``rt2-ros dataset`` / ``train``)."""
