"""LiteLLM's model management endpoints: /model/new, /model/update, /model/delete, /model/info."""

from decimal import Decimal

from django.db import IntegrityError, transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.decorators import api_view, schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from gateway import secrets
from gateway.api import serializers as s
from gateway.api.schema import BodyOnDeleteSchema
from gateway.config_import import ConfigError, parse_deployment
from gateway.models import CUSTOM_PRICE_FIELDS, Deployment
from gateway.proxy.registry import shown_api_base
from pricing import store
from pricing.resolve import resolve_deployment_price

# Error statuses each operation declares; the schema gives them OpenAI's error body (gateway.api.schema).
INVALID = OpenApiResponse(description="Invalid input; `param` names the field.")
NOT_FOUND = OpenApiResponse(description="No deployment with that id.")


def _parsed(entry: dict):
    try:
        return parse_deployment(entry)
    except ConfigError as exc:
        # Over the API there is no file: name the field as the request body spells it.
        field = (exc.field or "").removeprefix("model_list[0].")
        raise ValidationError({field or "non_field_errors": [str(exc).replace("model_list[0].", "")]}) from None


def deployment_out(deployment: Deployment) -> dict:
    """A deployment as LiteLLM's /model/info shows it: secrets only as hints, api_base without its credentials."""
    cost_map = store.load_active_cost_map()
    price = resolve_deployment_price(deployment, cost_map.entries, cost_map.version)
    entry = deployment_entry(deployment)
    params = {
        key: secrets.hint(value) if key == "api_key" or secrets.is_sealed(value) else value
        for key, value in entry["litellm_params"].items()
    }
    if "api_base" in params:
        params["api_base"] = shown_api_base(deployment.api_base)
    info = entry["model_info"]
    info.update(
        price_source=price.source,
        pricing_entry=price.matched or None,
        db_model=True,
        source=deployment.source,
        enabled=deployment.enabled,
        disabled_reason=deployment.disabled_reason or None,
    )
    for name in ("input_cost_per_token", "output_cost_per_token"):
        info.setdefault(name, price.entry.get(name))
    return {"model_name": entry["model_name"], "litellm_params": params, "model_info": info}


@extend_schema(tags=["model"], request=s.DeploymentIn, responses={200: s.DeploymentOut, 400: INVALID})
@api_view(["POST"])
def model_new(request):
    entry = s.DeploymentIn(data=request.data)
    entry.is_valid(raise_exception=True)
    spec = _parsed(entry.validated_data)
    taken = ValidationError({"model_info.id": [f"a deployment with id {spec.model_id!r} already exists"]})
    try:
        with transaction.atomic():
            if Deployment.objects.filter(model_id=spec.model_id).exists():
                raise taken
            deployment = Deployment.objects.create(model_id=spec.model_id, source=Deployment.Source.API, **spec.values)
            deployment.record_price_revision(changed_by="api", note="/model/new")
    except IntegrityError:
        raise taken from None  # created by a concurrent request between the check and the insert
    return Response(deployment_out(deployment))


@extend_schema(
    tags=["model"], request=s.DeploymentUpdateIn, responses={200: s.DeploymentOut, 400: INVALID, 404: NOT_FOUND}
)
@api_view(["POST", "PATCH"])
def model_update(request):
    body = s.DeploymentUpdateIn(data=request.data)
    body.is_valid(raise_exception=True)
    changes = body.validated_data
    model_id = changes["model_info"]["id"]
    with transaction.atomic():
        deployment = Deployment.objects.select_for_update().filter(model_id=model_id).first()
        if deployment is None:
            raise NotFound(f"no deployment with id {model_id!r}")
        current = deployment_entry(deployment)
        # The stored timeout is a float; parse_deployment reads an entry's numbers as a config file's, Decimal.
        stored_params = {
            key: Decimal(repr(value)) if isinstance(value, float) else value
            for key, value in current["litellm_params"].items()
        }
        merged = {
            "model_name": changes.get("model_name") or current["model_name"],
            "litellm_params": {**stored_params, **(changes.get("litellm_params") or {})},
            "model_info": {**current["model_info"], **changes["model_info"]},
        }
        spec = _parsed(merged)
        if deployment.disabled_reason and not spec.values["disabled_reason"]:
            deployment.enabled = True  # it was disabled only because it could not be served; now it can
        for key, value in spec.values.items():
            setattr(deployment, key, value)
        deployment.save()
        deployment.record_price_revision(changed_by="api", note="/model/update")
    return Response(deployment_out(deployment))


def deployment_entry(deployment: Deployment) -> dict:
    """The stored deployment as a model_list entry (secrets still sealed, so they survive a round trip)."""
    params = {"model": deployment.litellm_model, **deployment.extra_params}
    for name in ("api_base", "api_version", "api_key", "timeout", "rpm", "tpm", "weight"):
        value = getattr(deployment, name)
        if value not in (None, ""):
            params[name] = value
    info = {"id": deployment.model_id, **deployment.model_info, **deployment.extra_pricing}
    if deployment.base_model:
        info["base_model"] = deployment.base_model
    for name in CUSTOM_PRICE_FIELDS:
        if getattr(deployment, name) is not None:
            info[name] = getattr(deployment, name)
    return {"model_name": deployment.model_name, "litellm_params": params, "model_info": info}


@extend_schema(
    tags=["model"], request=s.DeploymentDeleteIn, responses={200: s.MessageOut, 400: INVALID, 404: NOT_FOUND}
)
@api_view(["POST", "DELETE"])
@schema(BodyOnDeleteSchema())
def model_delete(request):
    body = s.DeploymentDeleteIn(data=request.data)
    body.is_valid(raise_exception=True)
    deployment = Deployment.objects.filter(model_id=body.validated_data["id"]).first()
    if deployment is None:
        raise NotFound(f"no deployment with id {body.validated_data['id']!r}")
    deployment.delete()
    return Response({"message": f"deployment {body.validated_data['id']} deleted"})


@extend_schema(tags=["model"], parameters=[s.ModelInfoQuery], responses={200: s.ModelInfoListOut, 400: INVALID})
@api_view(["GET"])
def model_info(request):
    query = s.ModelInfoQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    deployments = Deployment.objects.all()
    if query.validated_data.get("litellm_model_id"):
        deployments = deployments.filter(model_id=query.validated_data["litellm_model_id"])
    return Response({"data": [deployment_out(deployment) for deployment in deployments]})
