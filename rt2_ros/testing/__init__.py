"""Helpers for tests, demos and benchmarks (offline test models).

``rt2_ros.testing.make_model`` builds random-weight PaliGemma-architecture
checkpoints with action tokens; importing this package imports no torch.
"""
