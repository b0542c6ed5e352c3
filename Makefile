# The two commands of the README:
#   make demo   - the main job
#   make test   - every test (creates the venv and the colcon build first)
.PHONY: demo test bootstrap clean
demo:
	bash scripts/demo.sh
test:
	bash scripts/run_tests.sh -q
bootstrap:
	bash scripts/bootstrap.sh
clean:
	rm -rf build install log log-colcon.txt
