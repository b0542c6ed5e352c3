"""Pydantic schemas as ROS parameters (rt2_ros.ros.params) on a real rclpy node: the sim's schemas
(nested sections, list[str], a name prefix) get types, ranges, descriptions and one error message."""

import pytest
import rclpy
from rcl_interfaces.msg import ParameterType
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter

from rt2_ros.config import ConfigError
from rt2_ros.ros.params import declare_model_parameters, flat_defaults
from rt2_ros.sim.settings import SERVO_PARAM_PREFIX, ServoNodeParams, SimNodeParams


@pytest.fixture
def context():
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _node(context, name, **values):
    return Node(name, context=context, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])


def test_sim_schema_declares_typed_ranged_read_only_parameters(context):
    node = _node(context, "rt2_sim", **{"blocks": ["red", "blue"], "camera.rate_hz": 5.0})
    try:
        p = declare_model_parameters(node, SimNodeParams)
        assert p.blocks == ["red", "blue"] and p.camera.rate_hz == 5.0 and p.topics.image == "/camera/image_raw"
        blocks, rate = node.describe_parameters(["blocks", "camera.rate_hz"])
        assert blocks.type == ParameterType.PARAMETER_STRING_ARRAY and blocks.read_only
        assert rate.type == ParameterType.PARAMETER_DOUBLE and rate.floating_point_range[0].from_value == 0.0
        assert "frames per second" in rate.description
        assert all(node.has_parameter(n) for n in flat_defaults(SimNodeParams))
    finally:
        node.destroy_node()


def test_prefix_puts_the_servo_schema_under_moveit_servo(context):
    node = _node(context, "servo_node", **{"moveit_servo.scale.linear": 0.2})
    try:
        p = declare_model_parameters(node, ServoNodeParams, prefix=SERVO_PARAM_PREFIX)
        assert p.scale.linear == 0.2 and p.publish_period == 0.034
        assert node.has_parameter("moveit_servo.incoming_command_timeout") and not node.has_parameter("publish_period")
    finally:
        node.destroy_node()


def test_every_bad_value_is_named_in_one_error(context):
    node = _node(context, "rt2_sim", **{"camera.rate_hz": 0.0, "camera.width": "wide", "servo.distro": "iron"})
    try:
        with pytest.raises(ConfigError) as e:
            declare_model_parameters(node, SimNodeParams, what="rt2_sim parameters")
        msg = str(e.value)
        assert msg.startswith("invalid rt2_sim parameters: ")
        for name in ("camera.rate_hz", "camera.width", "servo.distro"):
            assert name in msg, msg
    finally:
        node.destroy_node()
