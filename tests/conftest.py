"""Suite-wide: tests marked ``realdata`` skip loudly without ../shared, except under CI
(:func:`tests.realparts.skip_realdata_without_shared`)."""

from __future__ import annotations

import pytest

from tests.realparts import skip_realdata_without_shared


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_realdata_without_shared(items)
