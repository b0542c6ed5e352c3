"""Model tests: torch and transformers (tiny models of the real architectures, built offline)."""

import pytest

pytest.importorskip("torch", reason="the ml layer needs torch (pip install -e .[inference])")
pytest.importorskip("transformers", reason="the ml layer needs transformers (pip install -e .[inference])")
