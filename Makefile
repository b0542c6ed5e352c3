# The two commands of the README:
#   make demo   - the main job: the closed-loop simulation (ARGS="--episodes 10" to pass options)
#   make test   - every test (creates the venv and the colcon build first)
#   make train  - reproduce the demo's VLA (models/rt2_sim_mini) from nothing (record, dataset, train)
.PHONY: demo test train bootstrap clean
demo:
	bash scripts/demo.sh $(ARGS)
test:
	bash scripts/run_tests.sh -q
train:
	bash scripts/train_demo_vla.sh
bootstrap:
	bash scripts/bootstrap.sh
clean:
	rm -rf build install log log-colcon.txt
