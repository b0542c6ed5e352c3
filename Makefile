# The two commands of the README:
#   make demo   - the main job: the closed-loop simulation (ARGS="--episodes 10" to pass options)
#   make test   - every test (creates the venv and the colcon build first)
#   make train  - reproduce the demo's learned policy (RT-1, models/rt1_sim) from nothing
#                 (record, train, evaluate, install; scripts/train_rt1.sh)
#   make train-vlm - the PaliGemma-architecture VLA recipe (scripts/train_demo_vla.sh)
.PHONY: demo test train train-vlm bootstrap clean
demo:
	bash scripts/demo.sh $(ARGS)
test:
	bash scripts/run_tests.sh -q
train:
	bash scripts/train_rt1.sh
train-vlm:
	bash scripts/train_demo_vla.sh
bootstrap:
	bash scripts/bootstrap.sh
clean:
	rm -rf build install log log-colcon.txt
