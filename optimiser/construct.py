"""A pydantic model instance built from field values *without* validation: the one home of that
trick (it sets pydantic's instance attributes directly, as ``model_construct`` does).

For values that are already what validation would make them, and only for models without
private attributes or extras. Two callers: :func:`optimiser.assessment.trusted` (the pipeline's
own outputs, tests/test_trusted_models.py) and ``optimiser.events._replaced`` (a copy with some
fields changed, tests/test_state_identifiers.py); each test compares the result with pydantic's
own construction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def unvalidated(cls: type[M], fields: dict[str, Any], fields_set: Iterable[str]) -> M:
    """An instance of ``cls`` holding ``fields`` (every field, in field order), with
    ``fields_set`` as the fields given explicitly."""
    model = cls.__new__(cls)
    object.__setattr__(model, "__dict__", fields)
    object.__setattr__(model, "__pydantic_fields_set__", set(fields_set))
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model
