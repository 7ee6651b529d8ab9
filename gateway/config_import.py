"""Import a LiteLLM-style config.yaml: model_list → deployments, router_settings → the router.

Parsing is pure and checks everything first; applying is one transaction keyed by model_info.id, so a bad file
changes nothing and importing the same file twice changes nothing either. A well-formed deployment Tollgate cannot
serve (LiteLLM's gemini/, bedrock/... or a provider name it does not know) does not fail the file: it is imported
disabled, with the reason on the row, so the rest of a LiteLLM config serves.
"""

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction

from gateway import secrets
from gateway.general_settings import LITELLM_PROCESS_SETTINGS
from gateway.models import CUSTOM_PRICE_FIELDS, Deployment, RouterSettings
from gateway.providers import unservable_reason
from gateway.proxy.router import ROUTING_STRATEGIES
from keys.api.inputs import check_storable_text

logger = logging.getLogger(__name__)

_ROUTER_FIELDS = (
    "routing_strategy",
    "routing_strategy_args",
    "num_retries",
    "timeout",
    "cooldown_time",
    "allowed_fails",
    "fallbacks",
)
# litellm_settings Tollgate reads (as router settings), and general_settings it reads (the process's database and
# master key, applied before Django starts). Any other key of these sections is reported at import as not
# supported: a LiteLLM config is full of them (success_callback, cache, alerting...), and dropping one silently
# would let an operator think it applies.
_LITELLM_SETTINGS = {"num_retries": "num_retries", "request_timeout": "timeout", "fallbacks": "fallbacks"}
_GENERAL_SETTINGS = frozenset({"database_url", "master_key"})
# latency-based-routing's routing_strategy_args, LiteLLM's names.
_STRATEGY_ARGS = ("ttl", "lowest_latency_buffer")
_SECRET_WORDS = ("key", "secret", "token", "password")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def validate_header_text(value: str) -> None:
    """A deployment's model_name and id go back in every answer's headers (x-litellm-model-group, -model-id),
    where a line break or other control character cannot be sent: refused where deployments are made."""
    if _CONTROL_CHARACTERS.search(value):
        raise ValidationError("must not hold a control character (a line break, a tab...): it is sent in headers")


class ConfigError(Exception):
    """A config file that cannot be imported; says where (line) and what (field)."""

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None):
        self.line, self.field = line, field
        where = " ".join(part for part in (f"line {line}" if line else "", f"field {field}" if field else "") if part)
        super().__init__(f"{where}: {message}" if where else message)


class _Node(dict):
    """A mapping that remembers the line it started on and the line of each key."""

    line: int = 0
    key_lines: dict


class _DecimalLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML with floats read as Decimal (prices keep the digits written) and mappings that know their lines.

    libyaml's parser where PyYAML has it: the pure-Python one took 0.4 s of every start with 500 deployments."""


def _construct_decimal(loader, node):
    text = loader.construct_scalar(node).replace("_", "")
    try:
        return Decimal(text)
    except InvalidOperation:
        return float(text)  # .inf / .nan: refused later as non-finite


def _construct_mapping(loader, node):
    loader.flatten_mapping(node)
    mapping = _Node()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
_DecimalLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line(mapping, key=None) -> int | None:
    if isinstance(mapping, _Node):
        return mapping.key_lines.get(key, mapping.line) if key is not None else mapping.line
    return None


def _resolve_references(value, mapping, key, path):
    """Resolve `os.environ/NAME` in any string value; a missing variable names itself and where it is used."""
    if isinstance(value, str) and value.startswith(secrets.ENV_PREFIX):
        name = value.removeprefix(secrets.ENV_PREFIX)
        if name not in os.environ:
            raise ConfigError(f"environment variable {name} is not set", line=_line(mapping, key), field=path)
    return value


@dataclass
class DeploymentSpecIn:
    """One model_list entry, checked and normalized, ready to store."""

    model_id: str
    values: dict
    line: int | None = None


@dataclass
class ParsedConfig:
    deployments: list[DeploymentSpecIn] = field(default_factory=list)
    router: dict = field(default_factory=dict)
    general: dict = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)  # settings Tollgate does not apply, as section.key


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    disabled: int = 0  # of the file's deployments, those Tollgate cannot serve
    unsupported: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.created} created, {self.updated} updated, {self.deleted} deleted, {self.unchanged} unchanged"
        if self.disabled:
            text += f"; {self.disabled} disabled, not served (see the warnings)"
        if self.unsupported:
            text += f"; not supported, ignored: {', '.join(self.unsupported)}"
        return text


def _non_negative_number(value, mapping, key, path, *, integer=False):
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        raise ConfigError(f"must be a number, got {value!r}", line=_line(mapping, key), field=path)
    if isinstance(value, float) or (isinstance(value, Decimal) and not value.is_finite()):
        raise ConfigError("must be a finite number", line=_line(mapping, key), field=path)
    if value < 0:
        raise ConfigError(f"must not be negative, got {value}", line=_line(mapping, key), field=path)
    if integer and value != int(value):
        raise ConfigError(f"must be a whole number, got {value}", line=_line(mapping, key), field=path)
    return int(value) if integer else value


def _is_price_field(name: str) -> bool:
    return "cost" in name


def parse_deployment(entry, index: int = 0) -> DeploymentSpecIn:
    where = f"model_list[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError("each model_list entry must be a mapping", field=where)
    model_name = entry.get("model_name")
    if not isinstance(model_name, str) or not model_name.strip():
        raise ConfigError("model_name is required", line=_line(entry, "model_name"), field=f"{where}.model_name")
    params = entry.get("litellm_params")
    if not isinstance(params, dict):
        raise ConfigError("litellm_params is required", line=_line(entry), field=f"{where}.litellm_params")
    info = entry.get("model_info") or {}
    if not isinstance(info, dict):
        raise ConfigError("must be a mapping", line=_line(entry, "model_info"), field=f"{where}.model_info")
    litellm_model = params.get("model")
    if not isinstance(litellm_model, str) or not litellm_model.strip():
        raise ConfigError("is required", line=_line(params), field=f"{where}.litellm_params.model")
    _storable_text(model_name, entry, "model_name", f"{where}.model_name")
    _header_text(model_name, entry, "model_name", f"{where}.model_name")
    values: dict = {"model_name": model_name.strip(), "litellm_model": litellm_model.strip()}
    values["disabled_reason"] = unservable_reason(values["litellm_model"])
    if values["disabled_reason"]:
        values["enabled"] = False
    # Where each stored value came from, to name it when the database could not hold it.
    origins = {
        "model_name": (entry, "model_name", f"{where}.model_name"),
        "litellm_model": (params, "model", f"{where}.litellm_params.model"),
        "extra_params": (entry, "litellm_params", f"{where}.litellm_params"),
        "model_info": (entry, "model_info", f"{where}.model_info"),
        "extra_pricing": (entry, "model_info", f"{where}.model_info"),
    }
    extra_params: dict = {}
    prices: dict = {}
    for key, value in params.items():
        path = f"{where}.litellm_params.{key}"
        origins[key] = (params, key, path)
        value = _storable_text(_resolve_references(value, params, key, path), params, key, path)
        if key == "model":
            continue
        if _is_price_field(key):
            prices[key] = (_non_negative_number(value, params, key, path), params, key, path)
        elif key in ("rpm", "tpm", "weight"):
            values[key] = _non_negative_number(value, params, key, path, integer=True)
        elif key == "timeout":
            values[key] = float(_non_negative_number(value, params, key, path)) or None
        elif key == "api_key":
            values["api_key"] = secrets.seal(str(value)) if value is not None else ""
        elif key in ("api_base", "api_version"):
            values[key] = "" if value is None else str(value)
        elif any(word in key for word in _SECRET_WORDS) and isinstance(value, str):
            extra_params[key] = secrets.seal(value)
        else:
            extra_params[key] = value
    model_info: dict = {}
    model_id = None
    for key, value in info.items():
        path = f"{where}.model_info.{key}"
        origins["model_id" if key == "id" else key] = (info, key, path)
        value = _storable_text(_resolve_references(value, info, key, path), info, key, path)
        if key == "id":
            model_id = _header_text(str(value), info, key, path)
        elif key == "base_model":
            values["base_model"] = str(value or "")
        elif _is_price_field(key):
            prices[key] = (_non_negative_number(value, info, key, path), info, key, path)
        elif key == "access_groups":
            model_info[key] = _names(value, info, key, path)
        else:
            model_info[key] = _json_safe(value)
    extra_pricing = {}
    for key, (price, *_where) in prices.items():
        if key in CUSTOM_PRICE_FIELDS:
            values[key] = Decimal(price)
        else:
            extra_pricing[key] = str(Decimal(price))
    values["extra_params"] = _json_safe(extra_params)
    values["model_info"] = model_info
    values["extra_pricing"] = extra_pricing
    if model_id is None:
        # Without model_info.id, the identity is the entry itself minus secrets: re-importing finds the same row.
        identity = repr(sorted((k, str(v)) for k, v in params.items() if k != "api_key")) + model_name
        model_id = hashlib.sha256(identity.encode()).hexdigest()[:32]
    _check_storable(model_id, values, origins)
    return DeploymentSpecIn(model_id=model_id, values=values, line=_line(entry))


def _names(value, mapping, key, path) -> list[str]:
    """A list of names (model_info.access_groups), each once, in the order written."""
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ConfigError("must be a list of names", line=_line(mapping, key), field=path)
    return list(dict.fromkeys(item.strip() for item in value))


def _storable_text(value, mapping, key, path):
    """`value`, unless a string in it (an object key included) holds a NUL character or a lone surrogate."""
    try:
        check_storable_text(value)
    except ValidationError as exc:
        raise ConfigError(exc.messages[0], line=_line(mapping, key), field=path) from None
    return value


def _header_text(value: str, mapping, key, path) -> str:
    try:
        validate_header_text(value)
    except ValidationError as exc:
        raise ConfigError(exc.messages[0], line=_line(mapping, key), field=path) from None
    return value


# PositiveIntegerField's range on PostgreSQL; a timeout is a float that must stay finite (no call waits 30 years).
_INTEGER_LIMIT = 2**31 - 1
_TIMEOUT_LIMIT = 10**9


def _check_storable(model_id: str, values: dict, origins: dict) -> None:
    """Refuse what the deployment's columns cannot hold (lengths, decimal places, integer ranges), naming the
    field, instead of failing in the database."""
    problems: dict[str, list[str]] = {}
    try:
        Deployment(model_id=model_id, **values).full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        problems = exc.message_dict
    for name, value in values.items():
        if name in ("rpm", "tpm", "weight") and value > _INTEGER_LIMIT:
            problems.setdefault(name, []).append(f"must be at most {_INTEGER_LIMIT}")
        elif name == "timeout" and value and value > _TIMEOUT_LIMIT:
            problems.setdefault(name, []).append(f"must be at most {_TIMEOUT_LIMIT} seconds")
    if problems:
        name, messages = next(iter(problems.items()))
        mapping, key, path = origins[name]
        raise ConfigError(messages[0], line=_line(mapping, key), field=path)


def _json_safe(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _section(document, name: str) -> dict:
    section = document.get(name) or {}
    if not isinstance(section, dict):
        raise ConfigError("must be a mapping", line=_line(document, name), field=name)
    return section


def _parse_router(document, unsupported: list[str]) -> dict:
    router_settings = _section(document, "router_settings")
    litellm_settings = _section(document, "litellm_settings")
    merged = {}
    # LiteLLM also accepts these under litellm_settings; router_settings wins when both are set.
    for source_key, value in litellm_settings.items():
        if source_key in _LITELLM_SETTINGS:
            merged[_LITELLM_SETTINGS[source_key]] = (
                value,
                litellm_settings,
                source_key,
                f"litellm_settings.{source_key}",
            )
        elif source_key not in LITELLM_PROCESS_SETTINGS:  # read at start (gateway.general_settings)
            unsupported.append(f"litellm_settings.{source_key}")
    for key, value in router_settings.items():
        if key in _ROUTER_FIELDS:
            merged[key] = (value, router_settings, key, f"router_settings.{key}")
        else:
            unsupported.append(f"router_settings.{key}")
    router: dict = {}
    for key, (value, mapping, source_key, path) in merged.items():
        if key == "routing_strategy":
            if value not in ROUTING_STRATEGIES:
                raise ConfigError(
                    f"unknown strategy {value!r} (known: {', '.join(ROUTING_STRATEGIES)})",
                    line=_line(mapping, source_key),
                    field=path,
                )
            router[key] = value
        elif key == "routing_strategy_args":
            router[key] = _strategy_args(value, mapping, source_key, path, unsupported)
        elif key in ("num_retries", "allowed_fails"):
            router[key] = _non_negative_number(value, mapping, source_key, path, integer=True)
        elif key in ("timeout", "cooldown_time"):
            router[key] = float(_non_negative_number(value, mapping, source_key, path))
        elif key == "fallbacks":
            router[key] = _parse_fallbacks(value, mapping, source_key, path)
    return router


def _strategy_args(value, mapping, key, path, unsupported: list[str]) -> dict:
    """latency-based-routing's `ttl` (seconds a latency is remembered) and `lowest_latency_buffer` (a fraction:
    deployments this much slower than the fastest share its traffic); any other argument is reported unsupported."""
    if not isinstance(value, dict):
        raise ConfigError("must be a mapping", line=_line(mapping, key), field=path)
    args = {}
    for name, number in value.items():
        if name in _STRATEGY_ARGS:
            args[name] = float(_non_negative_number(number, value, name, f"{path}.{name}"))
        else:
            unsupported.append(f"{path}.{name}")
    return args


def _parse_fallbacks(value, mapping, key, path) -> list:
    if not isinstance(value, list) or not all(
        isinstance(item, dict)
        and all(isinstance(v, list) and all(isinstance(g, str) for g in v) for v in item.values())
        for item in value
    ):
        raise ConfigError(
            'must be a list of {"group": ["fallback group", ...]} mappings', line=_line(mapping, key), field=path
        )
    return [{str(k): list(v) for k, v in item.items()} for item in value]


def parse_config(text: str) -> ParsedConfig:
    """Check a whole config file; raise ConfigError naming the line and field of the first problem."""
    try:
        document = yaml.load(text, Loader=_DecimalLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            f"not valid YAML: {getattr(exc, 'problem', exc)}", line=mark.line + 1 if mark else None
        ) from exc
    if document is None:
        document = _Node()
    if not isinstance(document, dict):
        raise ConfigError("the file must be a YAML mapping with model_list, router_settings, general_settings")
    model_list = document.get("model_list") or []
    if not isinstance(model_list, list):
        raise ConfigError("must be a list", line=_line(document, "model_list"), field="model_list")
    parsed = ParsedConfig()
    seen: dict[str, int] = {}
    for index, entry in enumerate(model_list):
        spec = parse_deployment(entry, index)
        if spec.model_id in seen:
            raise ConfigError(
                f"model_info.id {spec.model_id!r} is used twice (also by model_list[{seen[spec.model_id]}])",
                line=spec.line,
                field=f"model_list[{index}].model_info.id",
            )
        seen[spec.model_id] = index
        parsed.deployments.append(spec)
    parsed.router = _parse_router(document, parsed.unsupported)
    groups = {spec.values["model_name"] for spec in parsed.deployments}
    for item in parsed.router.get("fallbacks", []):
        for group, targets in item.items():
            for target in [group, *targets]:
                if target not in groups:
                    raise ConfigError(f"names model group {target!r}, which no model_list entry has", field="fallbacks")
    general = _section(document, "general_settings")
    for key, value in general.items():
        _resolve_references(value, general, key, f"general_settings.{key}")
        if key not in _GENERAL_SETTINGS:
            parsed.unsupported.append(f"general_settings.{key}")
    parsed.general = dict(general)
    return parsed


@transaction.atomic
def apply_config(parsed: ParsedConfig) -> ImportSummary:
    """Make the database match the file: upsert its deployments, drop config deployments it no longer lists."""
    summary = ImportSummary(unsupported=list(parsed.unsupported))
    for name in parsed.unsupported:
        logger.warning("config setting %s is not supported by Tollgate: ignored", name)
    existing = {deployment.model_id: deployment for deployment in Deployment.objects.select_for_update()}
    for spec in parsed.deployments:
        deployment = existing.get(spec.model_id)
        values = {**_defaults(), **spec.values, "source": Deployment.Source.CONFIG}
        if values["disabled_reason"]:
            summary.disabled += 1
            logger.warning(
                "deployment %s of model_name %r is imported disabled: %s",
                spec.model_id,
                values["model_name"],
                values["disabled_reason"],
            )
        if deployment is None:
            created = Deployment.objects.create(model_id=spec.model_id, **values)
            created.record_price_revision(changed_by="config", note="config import")
            summary.created += 1
            continue
        changed = {key: value for key, value in values.items() if not _same(key, getattr(deployment, key), value)}
        if changed:
            for key, value in changed.items():
                setattr(deployment, key, value)
            deployment.save()
            deployment.record_price_revision(changed_by="config", note="config import")
            summary.updated += 1
        else:
            summary.unchanged += 1
    listed = {spec.model_id for spec in parsed.deployments}
    for model_id, deployment in existing.items():
        if deployment.source == Deployment.Source.CONFIG and model_id not in listed:
            deployment.delete()
            summary.deleted += 1
    router = RouterSettings.load()
    router_changes = {key: value for key, value in parsed.router.items() if getattr(router, key) != value}
    if router_changes:
        for key, value in router_changes.items():
            setattr(router, key, value)
        router.save()
    return summary


def _defaults() -> dict:
    defaults = {name: None for name in (*CUSTOM_PRICE_FIELDS, "timeout", "rpm", "tpm", "weight")}
    defaults.update(api_base="", api_version="", api_key="", base_model="", enabled=True, disabled_reason="")
    return defaults


def _same(key: str, current, new) -> bool:
    if key in ("api_key",) or (key == "extra_params" and current != new):
        # Encryption is randomized: compare what the secrets decrypt to.
        if key == "api_key":
            return secrets.unseal(current) == secrets.unseal(new)
        return _unsealed(current) == _unsealed(new)
    return current == new


def _unsealed(params: dict) -> dict:
    return {key: secrets.unseal(value) if isinstance(value, str) else value for key, value in params.items()}


def import_config_file(path: str) -> ImportSummary:
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    return apply_config(parse_config(text))
