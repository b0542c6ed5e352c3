"""The ROS package: package.xml, the colcon build and its generated messages."""

import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_package_xml_is_format_3_with_license_maintainer_and_ament_cmake():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "rt2_ros"
    assert root.findtext("license") and root.find("maintainer").get("email")
    assert root.find("export/build_type").text == "ament_cmake"
    deps = {e.text for e in root if e.tag.endswith("depend")}
    assert {"rclpy", "rosidl_default_generators", "std_msgs", "sensor_msgs", "geometry_msgs"} <= deps
    assert root.findtext("member_of_group") == "rosidl_interface_packages"


def test_colcon_built_messages_import_and_carry_their_fields():
    from rt2_ros.msg import EpisodeStatus, RT2Action

    a = RT2Action()
    a.tokens = [1, 128, 124, 136, 121, 158, 111, 255]
    a.delta_position = [0.01, 0.0, -0.01]
    assert list(a.tokens)[-1] == 255 and a.header.frame_id == ""
    s = EpisodeStatus(state=EpisodeStatus.STATE_RUNNING, reason="", step=3, elapsed_s=0.6, instruction="x")
    assert s.STATE_FINISHED == 2


def test_episode_state_values_match_the_message():
    from rt2_ros.episode import EpisodeState
    from rt2_ros.msg import EpisodeStatus

    assert (EpisodeState.IDLE, EpisodeState.RUNNING, EpisodeState.FINISHED) == (
        EpisodeStatus.STATE_IDLE,
        EpisodeStatus.STATE_RUNNING,
        EpisodeStatus.STATE_FINISHED,
    )


def test_installed_share_has_config_and_executable():
    from ament_index_python.packages import get_package_prefix, get_package_share_directory

    share = Path(get_package_share_directory("rt2_ros"))
    assert (share / "config" / "rt2.yaml").is_file() and (share / "package.xml").is_file()
    exe = Path(get_package_prefix("rt2_ros")) / "lib" / "rt2_ros" / "rt2_node"
    assert exe.is_file()
