"""Unit tests of the ROS-free, torch-free core: numpy, scipy and pydantic only."""
