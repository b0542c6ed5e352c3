# The two commands of the README:
#   make demo   - the main job: the closed-loop simulation (ARGS="--episodes 10" to pass options)
#   make test   - every test (creates the venv and the colcon build first)
.PHONY: demo test bootstrap clean
demo:
	bash scripts/demo.sh $(ARGS)
test:
	bash scripts/run_tests.sh -q
bootstrap:
	bash scripts/bootstrap.sh
clean:
	rm -rf build install log log-colcon.txt
