import pytest

# The conformance suite lives outside test_*.py modules: have pytest rewrite its asserts
# so a failure shows the values compared.
pytest.register_assert_rewrite("tests.store.contract", "tests.store._workers")
