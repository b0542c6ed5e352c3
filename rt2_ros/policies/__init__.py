"""Policy backends. ``make_policy`` builds one from config; importing this package
imports no torch (the transformers backend is imported lazily)."""
