"""Client-side checks of request parameters, run before anything is sent.

Each check raises ``InvalidParameterError`` naming the parameter (dotted, e.g.
``method.dpo.hyperparameters.beta``) and saying what is allowed. The limits are the spec's and
the seeds' (metadata: 16 keys, 64-character keys, 512-character values; at most 5 integrations;
``n_epochs`` 1-50; ``suffix`` 1-64 characters...). Records are turned into the same dicts the
user could have written, and only dicts are checked, so both spellings are validated alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from ._converter import converter
from .errors import InvalidParameterError

__all__ = [
    "as_json_object",
    "check_after",
    "check_id",
    "check_limit",
    "check_metadata",
    "check_one_of",
    "fine_tuning_job_body",
    "metadata_query",
]

MAX_METADATA_KEYS: Final = 16
MAX_METADATA_KEY_LENGTH: Final = 64
MAX_METADATA_VALUE_LENGTH: Final = 512
MAX_INTEGRATIONS: Final = 5
MAX_SUFFIX_LENGTH: Final = 64
MAX_SEED: Final = 2_147_483_647

#: (name, kind, lowest, lowest is exclusive, highest) for each "auto"-or-number hyperparameter.
_NUMBER_RULES: Final[Mapping[str, tuple[type, float, bool, float | None]]] = {
    "batch_size": (int, 1, False, 256),
    "n_epochs": (int, 1, False, 50),
    "learning_rate_multiplier": (float, 0, True, None),
    "beta": (float, 0, True, 2),
    "compute_multiplier": (float, 0.00001, True, 10),
    "eval_interval": (int, 1, False, None),
    "eval_samples": (int, 1, False, None),
}

#: The hyperparameters each method accepts (the spec's schemas).
_METHOD_HYPERPARAMETERS: Final[Mapping[str, frozenset[str]]] = {
    "supervised": frozenset({"batch_size", "learning_rate_multiplier", "n_epochs"}),
    "dpo": frozenset({"beta", "batch_size", "learning_rate_multiplier", "n_epochs"}),
    "reinforcement": frozenset(
        {
            "batch_size",
            "learning_rate_multiplier",
            "n_epochs",
            "reasoning_effort",
            "compute_multiplier",
            "eval_interval",
            "eval_samples",
        }
    ),
}
_REASONING_EFFORTS: Final = ("default", "low", "medium", "high")


def _fail(param: str, message: str) -> InvalidParameterError:
    return InvalidParameterError(f"{param}: {message}", param=param)


def check_id(value: object, param: str) -> str:
    """Return ``value`` if it is a non-empty string id, else raise."""
    if not isinstance(value, str):
        raise _fail(param, f"must be a string id, got {type(value).__name__}")
    if not value.strip():
        raise _fail(param, "must not be empty")
    return value


def check_limit(limit: object) -> int | None:
    """Return a page size that is None or a positive integer, else raise."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise _fail("limit", f"must be a positive integer, got {limit!r}")
    if limit <= 0:
        raise _fail("limit", f"must be a positive integer, got {limit}")
    return limit


def check_after(after: object) -> str | None:
    """Return a cursor that is None or a non-empty string, else raise."""
    return None if after is None else check_id(after, "after")


def check_one_of(
    value: object, param: str, allowed: Sequence[str], *, required: bool = False
) -> str | None:
    """Return ``value`` if it is one of ``allowed`` (or None when not ``required``), else raise."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or value not in allowed:
        raise _fail(param, f"must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def as_json_object(value: object, param: str) -> dict[str, Any]:
    """Return an attrs record or a mapping as a plain JSON dict, else raise."""
    if attrs.has(type(value)):
        unstructured: dict[str, Any] = converter.unstructure(value)
        return unstructured
    if isinstance(value, Mapping):
        return dict(value)
    raise _fail(
        param, f"must be a dict or a finetune_async.types record, got {type(value).__name__}"
    )


#: The bounds of an ``expires_after`` policy's ``seconds`` (the spec: one hour to 30 days).
EXPIRY_SECONDS: Final = (3600, 2_592_000)


def check_expires_after(value: object, param: str) -> dict[str, Any] | None:
    """Return an expiration policy ``{"anchor": "created_at", "seconds": N}`` checked, or None.

    The spec's ``FileExpirationAfter`` / ``BatchFileExpirationAfter``: the only anchor is
    ``created_at``, and ``seconds`` is an integer from 3600 (an hour) to 2592000 (30 days).
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _fail(
            param,
            f'must be a dict like {{"anchor": "created_at", "seconds": 86400}}, got '
            f"{type(value).__name__}",
        )
    unknown = sorted(set(value) - {"anchor", "seconds"})
    if unknown:
        raise _fail(param, f"has unknown keys {unknown}: only 'anchor' and 'seconds' are allowed")
    if value.get("anchor") != "created_at":
        raise _fail(param, f"anchor must be 'created_at', got {value.get('anchor')!r}")
    seconds = value.get("seconds")
    low, high = EXPIRY_SECONDS
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not low <= seconds <= high:
        raise _fail(param, f"seconds must be an integer from {low} to {high}, got {seconds!r}")
    return {"anchor": "created_at", "seconds": seconds}


def check_metadata(metadata: object, param: str = "metadata") -> dict[str, str] | None:
    """Return ``metadata`` if it keeps the API's limits, else raise."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise _fail(param, f"must be a dict of strings, got {type(metadata).__name__}")
    if len(metadata) > MAX_METADATA_KEYS:
        raise _fail(param, f"at most {MAX_METADATA_KEYS} keys are allowed, got {len(metadata)}")
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise _fail(param, f"keys must be strings, got {key!r}")
        if len(key) > MAX_METADATA_KEY_LENGTH:
            raise _fail(
                f"{param}[{key[:20]}…]",
                f"keys are at most {MAX_METADATA_KEY_LENGTH} characters, got {len(key)}",
            )
        if not isinstance(value, str):
            raise _fail(f"{param}[{key}]", f"values must be strings, got {type(value).__name__}")
        if len(value) > MAX_METADATA_VALUE_LENGTH:
            raise _fail(
                f"{param}[{key}]",
                f"values are at most {MAX_METADATA_VALUE_LENGTH} characters, got {len(value)}",
            )
    return dict(metadata)


def metadata_query(metadata: object) -> list[tuple[str, str]]:
    """Return the ``metadata[key]=value`` query pairs of a list filter."""
    checked = check_metadata(metadata)
    return [(f"metadata[{key}]", value) for key, value in (checked or {}).items()]


def _check_number(name: str, value: object, param: str) -> None:
    rule = _NUMBER_RULES.get(name)
    if rule is None:
        return
    kind, lowest, exclusive, highest = rule
    if value == "auto":
        return
    wrong_kind = kind is int and not isinstance(value, int)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or wrong_kind
        or not math.isfinite(value)
    ):
        noun = "an integer" if kind is int else "a number"
        raise _fail(param, f'must be "auto" or {noun}, got {value!r}')
    too_low = value <= lowest if exclusive else value < lowest
    if too_low or (highest is not None and value > highest):
        low = f"> {lowest}" if exclusive else f">= {lowest}"
        high = "" if highest is None else f" and <= {highest}"
        raise _fail(param, f"must be {low}{high}, got {value!r}")


def _check_hyperparameters(value: object, param: str, allowed: frozenset[str]) -> dict[str, Any]:
    hyper = as_json_object(value, param)
    for name, item in hyper.items():
        if name not in allowed:
            raise _fail(
                f"{param}.{name}",
                f"is not a hyperparameter here; allowed: {', '.join(sorted(allowed))}",
            )
        if name == "reasoning_effort":
            check_one_of(item, f"{param}.{name}", _REASONING_EFFORTS)
        else:
            _check_number(name, item, f"{param}.{name}")
    return hyper


def _check_method(value: object) -> dict[str, Any]:
    method = as_json_object(value, "method")
    kind = method.get("type")
    if not isinstance(kind, str) or kind not in _METHOD_HYPERPARAMETERS:
        raise _fail(
            "method.type", f"must be one of 'supervised', 'dpo', 'reinforcement', got {kind!r}"
        )
    for other in _METHOD_HYPERPARAMETERS:
        if other != kind and method.get(other) is not None:
            raise _fail(f"method.{other}", f"is given but method.type is {kind!r}")
    section = method.get(kind)
    if section is None:
        if kind == "reinforcement":
            raise _fail("method.reinforcement", "a reinforcement method needs a grader")
        return method
    part = as_json_object(section, f"method.{kind}")
    hyper = part.get("hyperparameters")
    if hyper is not None:
        part["hyperparameters"] = _check_hyperparameters(
            hyper, f"method.{kind}.hyperparameters", _METHOD_HYPERPARAMETERS[kind]
        )
    if kind == "reinforcement" and not isinstance(part.get("grader"), Mapping):
        raise _fail("method.reinforcement.grader", "a reinforcement method needs a grader object")
    method[kind] = part
    return method


def _check_integrations(value: object) -> list[dict[str, Any]]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise _fail("integrations", f"must be a list, got {type(value).__name__}")
    if len(value) > MAX_INTEGRATIONS:
        raise _fail(
            "integrations", f"at most {MAX_INTEGRATIONS} integrations are allowed, got {len(value)}"
        )
    checked = []
    for index, item in enumerate(value):
        param = f"integrations[{index}]"
        integration = as_json_object(item, param)
        kind = integration.get("type")
        if not isinstance(kind, str) or not kind:
            raise _fail(
                f"{param}.type", f"must be a non-empty string such as 'wandb', got {kind!r}"
            )
        if kind == "wandb":
            wandb = as_json_object(integration.get("wandb"), f"{param}.wandb")
            if not isinstance(wandb.get("project"), str) or not wandb["project"]:
                raise _fail(f"{param}.wandb.project", "is required: the W&B project name")
            integration["wandb"] = wandb
        checked.append(integration)
    return checked


def fine_tuning_job_body(
    *,
    model: object,
    training_file: object,
    validation_file: object,
    method: object,
    hyperparameters: object,
    suffix: object,
    seed: object,
    integrations: object,
    metadata: object,
) -> dict[str, Any]:
    """Check the parameters of a job create and return its JSON body (unset ones left out)."""
    body: dict[str, Any] = {
        "model": check_id(model, "model"),
        "training_file": check_id(training_file, "training_file"),
    }
    if validation_file is not None:
        body["validation_file"] = check_id(validation_file, "validation_file")
    if method is not None:
        body["method"] = _check_method(method)
    if hyperparameters is not None:
        body["hyperparameters"] = _check_hyperparameters(
            hyperparameters, "hyperparameters", _METHOD_HYPERPARAMETERS["supervised"]
        )
    if suffix is not None:
        if not isinstance(suffix, str) or not suffix:
            raise _fail("suffix", f"must be a non-empty string, got {suffix!r}")
        if len(suffix) > MAX_SUFFIX_LENGTH:
            raise _fail("suffix", f"is at most {MAX_SUFFIX_LENGTH} characters, got {len(suffix)}")
        body["suffix"] = suffix
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise _fail("seed", f"must be an integer from 0 to {MAX_SEED}, got {seed!r}")
        body["seed"] = seed
    if integrations is not None:
        body["integrations"] = _check_integrations(integrations)
    if metadata is not None:
        body["metadata"] = check_metadata(metadata)
    return body
