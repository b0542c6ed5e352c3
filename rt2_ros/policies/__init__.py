"""Policy backends: the Policy interface and the local transformers backend (imported lazily: importing this package imports no torch)."""
