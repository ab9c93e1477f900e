"""The Models API, as far as fine-tuning needs it: retrieve and delete."""

from __future__ import annotations

from functools import partial

import attrs

from .._pagination import Runner
from .._sansio import path_segment
from .._validation import check_id
from ..types import Model, ModelDeleted
from ._requester import Requester

__all__ = ["AsyncModels"]


def _model_path(model: str) -> str:
    # path_segment keeps the `:` of fine-tuned model ids (`ft:gpt-4o-mini:org::id`) as it is.
    return f"/models/{path_segment(check_id(model, 'model'))}"


@attrs.frozen
class AsyncModels:
    """``client.models``."""

    _requester: Requester

    async def retrieve(self, model: str) -> Model:
        """Return a model: a base model or a fine-tuned one."""
        return await self._requester.request("GET", _model_path(model), Model)

    async def delete(self, model: str) -> ModelDeleted:
        """Delete a fine-tuned model (the organisation's owner role is needed)."""
        checked = check_id(model, "model")
        return await self._requester.request(
            "DELETE", _model_path(checked), ModelDeleted, empty=ModelDeleted(id=checked)
        )


@attrs.frozen
class Models:
    """Blocking twin of ``AsyncModels``."""

    _async_api: AsyncModels
    _runner: Runner

    def retrieve(self, model: str) -> Model:
        """Blocking twin of ``AsyncModels.retrieve``."""
        return self._runner.call(partial(self._async_api.retrieve, model))

    def delete(self, model: str) -> ModelDeleted:
        """Blocking twin of ``AsyncModels.delete``."""
        return self._runner.call(partial(self._async_api.delete, model))
