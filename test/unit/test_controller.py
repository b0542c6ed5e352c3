"""The control loop core, driven with an explicit clock and a scripted model."""

import threading

import numpy as np
import pytest
from scripted_policy import ScriptedTextPolicy

from rt2_ros.config import load_config
from rt2_ros.controller import Controller
from rt2_ros.episode import EndReason, EpisodeState

IMG = np.zeros((8, 8, 3), np.uint8)
# dx = bin 200: centre -0.05 + 200.5 * 0.1/256 = +0.0283 m; gripper bin 0 -> closed
MOVE = "1 200 128 128 128 128 128 0"
STOP = "0 128 128 128 128 128 128 0"


def make(texts, **overrides):
    # No end-effector pose in most tests: motion without it must be allowed explicitly.
    base = {"control.period_s": 0.2, "safety.max_linear_accel_mps2": 100.0, "safety.require_ee_pose": False}
    cfg = load_config(overrides={**base, **overrides})
    pol = ScriptedTextPolicy(cfg, texts)
    c = Controller(cfg, pol)
    return c, pol, cfg


def start(c, t=0.0):
    c.on_image(IMG, t)
    c.on_instruction("pick up the red block", t)


def test_idle_controller_sends_zero_and_does_not_run_the_model():
    c, pol, _ = make([MOVE])
    assert c.step(0.0) is None and pol.calls == 0
    assert c.servo_command(0.0).twist.is_zero


def test_action_becomes_velocity_for_one_control_period_then_zero():
    c, pol, cfg = make([MOVE])
    start(c)
    out = c.step(0.0)
    assert out.rejected is None and out.action is not None
    dx = out.action.delta_position[0]
    assert dx == pytest.approx(-0.05 + 200.5 * 0.1 / 256)
    v = c.servo_command(0.05).twist.linear
    assert v[0] == pytest.approx(dx / 0.2) and v[1] == pytest.approx(0.05 / 256 / 0.2)
    assert c.servo_command(0.25).twist.is_zero  # period over, no new action yet
    assert out.gripper == pytest.approx(0.5 / 256)  # bin 0 of [0, 1]: centre, nearly closed


def test_terminate_ends_episode_and_next_twists_are_zero():
    c, pol, _ = make([MOVE, STOP])
    start(c)
    c.step(0.0)
    assert not c.servo_command(0.1).twist.is_zero
    out = c.step(0.2)
    assert out.action.terminate and out.twist.is_zero and out.gripper is None  # gripper held
    (t,) = [t for t in out.transitions]
    assert t.reason is EndReason.TERMINATE and c.state is EpisodeState.FINISHED
    assert c.servo_command(0.21).twist.is_zero
    assert c.step(0.4) is None and pol.calls == 2  # no more model calls


def test_garbage_model_output_is_rejected_with_zero_twist_and_the_loop_goes_on():
    c, pol, _ = make(["1 128 128 banana 128 128 128 128", MOVE])
    start(c)
    out = c.step(0.0)
    assert out.action is None and "not a non-negative integer" in out.rejected
    assert out.result.text.startswith("1 128 128 banana")
    assert c.servo_command(0.05).twist.is_zero
    assert c.state is EpisodeState.RUNNING
    assert c.step(0.2).action is not None  # next good output moves again
    assert not c.servo_command(0.25).twist.is_zero


def test_backend_failure_is_no_action_never_the_last_action_replayed():
    c, pol, _ = make([MOVE, None])
    start(c)
    c.step(0.0)
    out = c.step(0.2)
    assert out.action is None and "policy failed" in out.rejected
    assert c.servo_command(0.25).twist.is_zero
    assert c.servo_command(0.35).twist.is_zero


def test_step_limit_lets_the_last_action_run_its_period():
    c, _, _ = make([MOVE], **{"control.max_steps": 2})
    start(c)
    c.step(0.0)
    c.step(0.2)
    assert not c.servo_command(0.3).twist.is_zero
    out = c.step(0.4)
    assert out.transitions[0].reason is EndReason.STEP_LIMIT
    assert c.servo_command(0.41).twist.is_zero


def test_stale_image_stops_motion_and_skips_the_model():
    c, pol, _ = make([MOVE], **{"safety.max_image_age_s": 0.5})
    start(c)
    c.step(0.0)
    cmd = c.servo_command(0.6)  # image from t=0 is 0.6 s old
    assert cmd.stop and cmd.twist.is_zero and "image_stale" in cmd.reasons
    out = c.step(0.6)
    assert out.action is None and "no fresh image" in out.rejected and pol.calls == 1
    c.on_image(IMG, 0.7)
    assert c.step(0.7).action is not None


def test_estop_ends_the_episode_latches_and_refuses_new_instructions():
    c, _, _ = make([MOVE])
    start(c)
    c.step(0.0)
    t = c.set_estop(True, 0.1)
    assert t.reason is EndReason.E_STOP
    assert c.servo_command(0.11).twist.is_zero
    with pytest.raises(ValueError, match="emergency stop"):
        c.on_instruction("go again", 0.2)
    c.set_estop(False, 0.3)
    c.on_image(IMG, 0.3)
    c.on_instruction("go again", 0.3)
    assert c.state is EpisodeState.RUNNING


def test_new_instruction_preempts_and_discards_inflight_result():
    c, pol, _ = make([MOVE])
    start(c)
    gate = threading.Event()
    orig = pol.infer_batch

    def slow(obs):
        gate.wait(5)
        return orig(obs)

    pol.infer_batch = slow
    box = {}
    th = threading.Thread(target=lambda: box.setdefault("out", c.step(0.0)))
    th.start()
    ts = c.on_instruction("push the blue block left", 0.05)
    gate.set()
    th.join(5)
    assert ts[0].reason is EndReason.PREEMPTED
    assert box["out"].rejected == "episode changed during inference"
    assert c.servo_command(0.1).twist.is_zero
    assert pol.resets == 2


def test_workspace_box_clips_through_the_controller():
    c, _, _ = make(["1 255 128 128 128 128 128 0"], **{"safety.workspace_max": [0.55, 0.5, 0.8]})
    start(c)
    c.on_ee_pose(np.array([0.549, 0.0, 0.3]), 0.0)
    c.step(0.0)
    v = c.servo_command(0.0).twist.linear
    assert v[0] * 0.2 <= 0.001 + 1e-9  # never beyond the face x = 0.55


def test_bad_inputs_are_refused_without_side_effects():
    c, _, _ = make([MOVE])
    with pytest.raises(ValueError):
        c.on_image(np.zeros((8, 8), np.uint8), 0.0)
    with pytest.raises(ValueError):
        c.on_image(np.zeros((8, 8, 3), np.float32), 0.0)
    with pytest.raises(ValueError):
        c.on_ee_pose(np.array([np.nan, 0, 0]), 0.0)
    with pytest.raises(ValueError):
        c.on_instruction("", 0.0)
    assert c.state is EpisodeState.IDLE


def test_transitions_are_drained_in_order():
    c, _, _ = make([MOVE, STOP])
    start(c)
    c.step(0.0)
    c.step(0.2)
    states = [(t.state, t.reason) for t in c.drain_transitions()]
    assert states == [(EpisodeState.RUNNING, None), (EpisodeState.FINISHED, EndReason.TERMINATE)]
    assert c.drain_transitions() == []


def test_image_stamped_in_the_future_is_refused_and_cannot_disable_the_watchdog():
    c, pol, _ = make([MOVE], **{"safety.max_image_age_s": 0.5})
    start(c)
    with pytest.raises(ValueError, match="in the future"):
        c.on_image(IMG, 60.0, now_s=0.1)  # garbage header / clock skew
    c.step(0.1)
    # The real camera goes on; the watchdog still sees it age and stop the robot.
    cmd = c.servo_command(0.7)
    assert cmd.stop and "image_stale" in cmd.reasons


def test_clock_jumping_back_makes_the_old_image_stale_and_new_frames_count():
    c, pol, _ = make([MOVE], **{"safety.max_image_age_s": 0.5})
    c.on_image(IMG, 100.0, now_s=100.0)
    c.on_instruction("pick up the red block", 100.0)
    # ROS time restarts (simulation reset): the stored frame lies in the future now.
    cmd = c.servo_command(1.0)
    assert cmd.stop and "image_stale" in cmd.reasons
    assert c.step(1.0).rejected.startswith("no fresh image")
    c.on_image(IMG, 1.05, now_s=1.05)  # older than the stored stamp, but the clock jumped: accepted
    assert c.step(1.1).action is not None


def test_pose_stamped_in_the_future_is_refused():
    c, _, _ = make([MOVE])
    with pytest.raises(ValueError, match="in the future"):
        c.on_ee_pose(np.array([0.5, 0.0, 0.3]), 30.0, now_s=0.0)


def test_gripper_is_held_while_the_arm_is_held_stopped():
    c, _, _ = make([MOVE], **{"safety.require_ee_pose": True})
    start(c)
    out = c.step(0.0)  # no end-effector pose: the arm may not move, so neither may the gripper
    assert out.action is not None and out.gripper is None
    c.on_ee_pose(np.array([0.5, 0.0, 0.3]), 0.2)
    out = c.step(0.2)
    assert out.gripper is not None


def test_gripper_of_a_step_is_not_sent_after_a_stop_that_came_later():
    c, _, _ = make([MOVE])
    start(c)
    out = c.step(0.0)
    sent = []
    c.cancel(0.05)  # /rt2/stop between the step and the gripper publication
    assert not c.send_gripper_if_allowed(out.episode_id, 0.06, lambda: sent.append(out.gripper))
    assert sent == []
    start(c, 0.1)
    out = c.step(0.1)
    assert c.send_gripper_if_allowed(out.episode_id, 0.11, lambda: sent.append(out.gripper)) and sent


def test_action_period_runs_on_the_callers_clock():
    # Under sim time at half speed, 0.4 s of wall-clock inference is 0.2 s of ROS time.
    ros_now = [0.0]
    c, pol, cfg = make([MOVE])
    c = Controller(cfg, pol, now_fn=lambda: ros_now[0])
    start(c)
    orig = pol.infer_batch

    def slow(obs):
        ros_now[0] = 0.2
        return orig(obs)

    pol.infer_batch = slow
    c.step(0.0)
    assert not c.servo_command(0.35).twist.is_zero
    assert c.servo_command(0.4).twist.is_zero  # period 0.2 s from 0.2 s on the caller's clock


@pytest.mark.parametrize("bad", ["?", "pick\x00up", "x" * 1001, "   "])
def test_instructions_the_prompt_would_refuse_are_refused_up_front(bad):
    c, _, _ = make([MOVE])
    with pytest.raises(ValueError):
        c.on_instruction(bad, 0.0)
    assert c.state is EpisodeState.IDLE


def test_a_building_terminate_streak_stops_the_previous_motion_at_once():
    c, _, _ = make([MOVE, STOP, STOP], **{"control.terminate_debounce": 2})
    start(c)
    c.step(0.0)
    assert not c.servo_command(0.05).twist.is_zero
    out = c.step(0.1)  # first terminate token: the episode goes on, the arm holds still
    assert out.twist.is_zero and c.state is EpisodeState.RUNNING
    assert c.servo_command(0.12).twist.is_zero
    assert c.step(0.3).transitions[0].reason is EndReason.TERMINATE


def test_workspace_box_accounts_for_the_age_of_the_pose():
    # Pose 0.4 s old at x = 0.50 while moving at 0.2 m/s: the arm is near x = 0.58 now,
    # beyond the face x = 0.55, so no further +x motion is allowed.
    c, _, _ = make(
        ["1 255 128 128 128 128 128 0"], **{"safety.workspace_max": [0.55, 0.5, 0.8], "safety.max_pose_age_s": 0.5}
    )
    start(c)
    c.on_ee_pose(np.array([0.50, 0.0, 0.3]), 0.0)
    c.step(0.0)
    v0 = c.servo_command(0.0).twist.linear[0]
    assert v0 > 0.15  # fresh pose, 5 cm of room: moving
    for k in range(1, 10):
        c.servo_command(0.02 * k)  # commanding +x, the pose is not updated
    c.step(0.2)
    for k in range(11, 19):
        c.servo_command(0.02 * k)
    assert c.servo_command(0.38).twist.linear[0] <= 1e-9
