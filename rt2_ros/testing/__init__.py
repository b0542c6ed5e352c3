"""Offline test models (random-weight PaliGemma/LLaVA checkpoints with action tokens) for tests, demos and benchmarks."""
