"""Routes of the Models API."""

from __future__ import annotations

from aiohttp import web

from ._common import (
    EmulatedAPIError,
    json_response,
    state_of,
    sync_all,
)

__all__ = ["routes"]


async def retrieve_model(request: web.Request) -> web.Response:
    """GET /models/{model}."""
    state = state_of(request)
    name = request.match_info["model"]
    await sync_all(state)
    if name in state.models:
        return json_response(state.models[name])
    if name in state.base_models:
        return json_response(
            {
                "id": name,
                "object": "model",
                "created": state.base_models[name],
                "owned_by": "system",
            }
        )
    raise EmulatedAPIError(
        404, f"The model '{name}' does not exist", param="model", code="model_not_found"
    )


async def delete_model(request: web.Request) -> web.Response:
    """DELETE /models/{model}: fine-tuned models only."""
    state = state_of(request)
    name = request.match_info["model"]
    await sync_all(state)
    if name in state.base_models:
        raise EmulatedAPIError(
            403,
            f"You cannot delete the base model '{name}'.",
            param="model",
            kind="permission_error",
        )
    if state.models.pop(name, None) is None:
        raise EmulatedAPIError(
            404, f"The model '{name}' does not exist", param="model", code="model_not_found"
        )
    return json_response({"id": name, "object": "model", "deleted": True})


async def list_models(request: web.Request) -> web.Response:
    """GET /models: base and fine-tuned models (not in the subset spec, but users expect it)."""
    state = state_of(request)
    await sync_all(state)
    base = [
        {"id": n, "object": "model", "created": c, "owned_by": "system"}
        for n, c in state.base_models.items()
    ]
    return json_response({"object": "list", "data": base + list(state.models.values())})


def routes() -> list[web.RouteDef]:
    """The Models API under ``/v1``: base models and the fine-tuned ones."""
    return [
        web.get("/v1/models", list_models),
        web.get("/v1/models/{model}", retrieve_model),
        web.delete("/v1/models/{model}", delete_model),
    ]
