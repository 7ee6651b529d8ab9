"""Importing LiteLLM's config.yaml: the spec's files work as written, twice is once, bad files change nothing."""

from decimal import Decimal

import pytest

from gateway import secrets
from gateway.config_import import ConfigError, apply_config, parse_config
from gateway.models import Deployment, RouterSettings, RoutingVersion

SPEC_MULTI_PROVIDER = """
model_list:
  # OpenAI - uses built-in pricing
  - model_name: gpt-4
    litellm_params:
      model: openai/gpt-4
      api_key: os.environ/OPENAI_API_KEY

  # Azure - needs base_model for accurate pricing
  - model_name: azure-gpt35
    litellm_params:
      model: azure/chatgpt-deployment
      api_base: os.environ/AZURE_API_BASE
      api_key: os.environ/AZURE_API_KEY
    model_info:
      base_model: azure/gpt-3.5-turbo

  # Custom model - requires custom pricing
  - model_name: "codellama"
    litellm_params:
      model: "ollama_chat/codellama"
      api_base: "http://ollama:11434"
    model_info:
      input_cost_per_token: 0.00003
      output_cost_per_token: 0.00006

  # SageMaker - time-based pricing
  - model_name: sagemaker-model
    litellm_params:
      model: sagemaker/my-endpoint
    model_info:
      input_cost_per_second: 0.000420
router_settings:
  num_retries: 3
  fallbacks: [{"gpt-4": ["codellama"]}]
  cooldown_time: 30
"""


@pytest.fixture
def provider_env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-test-1234567890abcd")
    monkeypatch.setenv("AZURE_API_KEY", "azure-key-0987654321")
    monkeypatch.setenv("AZURE_API_BASE", "https://my-resource.openai.azure.com")


@pytest.mark.django_db
def test_spec_multi_provider_config_imports(provider_env):
    summary = apply_config(parse_config(SPEC_MULTI_PROVIDER))

    assert (summary.created, summary.updated, summary.deleted) == (4, 0, 0)
    codellama = Deployment.objects.get(model_name="codellama")
    assert codellama.provider == "ollama_chat"
    assert codellama.input_cost_per_token == Decimal("0.00003")
    assert codellama.output_cost_per_token == Decimal("0.00006")
    assert Deployment.objects.get(model_name="sagemaker-model").input_cost_per_second == Decimal("0.000420")
    azure = Deployment.objects.get(model_name="azure-gpt35")
    assert azure.base_model == "azure/gpt-3.5-turbo"
    # References stay references: the secret itself never reaches the database.
    assert azure.api_key == "os.environ/AZURE_API_KEY"
    assert secrets.unseal(azure.api_key) == "azure-key-0987654321"
    router = RouterSettings.load()
    assert (router.num_retries, router.cooldown_time, router.fallbacks) == (3, 30.0, [{"gpt-4": ["codellama"]}])


@pytest.mark.django_db
def test_importing_twice_changes_nothing(provider_env):
    apply_config(parse_config(SPEC_MULTI_PROVIDER))
    before = list(Deployment.objects.values_list("model_id", "updated_at").order_by("model_id"))

    summary = apply_config(parse_config(SPEC_MULTI_PROVIDER))

    assert (summary.created, summary.updated, summary.deleted, summary.unchanged) == (0, 0, 0, 4)
    assert list(Deployment.objects.values_list("model_id", "updated_at").order_by("model_id")) == before


@pytest.mark.django_db
def test_an_import_moves_the_routing_version_once(provider_env, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        apply_config(parse_config(SPEC_MULTI_PROVIDER))
    assert (len(callbacks), RoutingVersion.objects.get().version) == (1, 1)


@pytest.mark.django_db(transaction=True)
def test_an_import_that_deletes_moves_the_routing_version_once(provider_env):
    apply_config(parse_config(SPEC_MULTI_PROVIDER))
    before = RoutingVersion.objects.get().version

    apply_config(parse_config("model_list: []"))

    assert (Deployment.objects.count(), RoutingVersion.objects.get().version) == (0, before + 1)


@pytest.mark.django_db
def test_literal_api_key_is_encrypted_at_rest_and_shown_as_hint():
    config = "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/gpt-4\n      api_key: sk-live-abcdef123456wxyz\n"
    apply_config(parse_config(config))

    stored = Deployment.objects.get().api_key
    assert "sk-live-abcdef123456wxyz" not in stored
    assert secrets.unseal(stored) == "sk-live-abcdef123456wxyz"
    assert secrets.hint(stored) == "sk-...wxyz"


@pytest.mark.django_db
def test_removed_config_entries_are_deleted_but_admin_ones_stay():
    Deployment.objects.create(model_name="by-hand", litellm_model="openai/gpt-4", source=Deployment.Source.ADMIN)
    two = "model_list:\n" + "".join(
        f"  - model_name: m{i}\n    litellm_params:\n      model: openai/gpt-4\n    model_info:\n      id: d{i}\n"
        for i in range(2)
    )
    apply_config(parse_config(two))
    one = two.split("  - model_name: m1")[0]

    summary = apply_config(parse_config(one))

    assert summary.deleted == 1
    assert sorted(Deployment.objects.values_list("model_name", flat=True)) == ["by-hand", "m0"]


@pytest.mark.parametrize(
    ("config", "line", "field", "words"),
    [
        ("model_list:\n  - litellm_params:\n      model: openai/gpt-4\n", None, "model_list[0].model_name", "required"),
        (
            "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n      rpm: -5\n",
            5,
            "model_list[0].litellm_params.rpm",
            "negative",
        ),
        (
            "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n    model_info:\n"
            "      input_cost_per_token: cheap\n",
            6,
            "model_list[0].model_info.input_cost_per_token",
            "number",
        ),
        (
            "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n      api_key: os.environ/NOPE_X\n",
            5,
            "model_list[0].litellm_params.api_key",
            "NOPE_X",
        ),
        ("model_list: [\n", 2, None, "YAML"),
        (
            "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\nrouter_settings:\n"
            "  fallbacks: [{a: [ghost]}]\n",
            None,
            "fallbacks",
            "ghost",
        ),
        ("router_settings:\n  routing_strategy: fastest\n", 2, "router_settings.routing_strategy", "unknown strategy"),
    ],
)
def test_bad_config_names_line_and_field(config, line, field, words):
    with pytest.raises(ConfigError) as raised:
        parse_config(config)

    assert raised.value.field == field
    if line is not None:
        assert raised.value.line == line
    assert words in str(raised.value)


ENTRY = "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n"


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ("      rpm: 4294967296\n", "litellm_params.rpm", "2147483647"),
        ('      model: "openai/x\\0"\n', "litellm_params.model", "Null characters"),
        ("      timeout: 1000000000000.0\n", "litellm_params.timeout", "at most"),
        ("      api_version: " + "v" * 51 + "\n", "litellm_params.api_version", "at most 50 characters"),
        ('      api_base: "http://a\\0b"\n', "litellm_params.api_base", "Null characters"),
        ('      extra_header: "a\\0b"\n', "litellm_params.extra_header", "Null characters"),
        ("    model_info:\n      id: " + "i" * 101 + "\n", "model_info.id", "at most 100 characters"),
        (
            "    model_info:\n      input_cost_per_token: 0.000000000000000000001\n",
            "model_info.input_cost_per_token",
            "decimal places",
        ),
    ],
)
def test_what_the_database_cannot_hold_is_refused_naming_the_field(extra, field, words):
    with pytest.raises(ConfigError) as raised:
        parse_config(ENTRY + extra)

    assert raised.value.field == f"model_list[0].{field}"
    assert raised.value.line is not None
    assert words in str(raised.value)


@pytest.mark.django_db
def test_bad_file_changes_nothing(provider_env):
    apply_config(parse_config(SPEC_MULTI_PROVIDER))
    broken = SPEC_MULTI_PROVIDER.replace("input_cost_per_second: 0.000420", "input_cost_per_second: -1")

    with pytest.raises(ConfigError):
        apply_config(parse_config(broken))

    assert Deployment.objects.get(model_name="sagemaker-model").input_cost_per_second == Decimal("0.000420")


UNSERVABLE = """
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o, api_key: sk-good-openai-secret-5150}
    model_info: {id: good-1}
  - model_name: groq-llama
    litellm_params: {model: groq/llama-3.1-8b-instant}
    model_info: {id: good-2}
  - model_name: %(name)s
    litellm_params: {model: %(model)s, api_key: sk-unservable-secret-8080}
    model_info: {id: bad-1}
router_settings:
  fallbacks: [{"gpt-4o": ["%(name)s"]}]
"""


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "model", "provider"),
    [
        ("watsonx-granite", "watsonx/ibm/granite-13b-chat-v2", "watsonx"),
        ("replicate-llama", "replicate/meta/llama-2-70b-chat", "replicate"),
        ("typo", "opneai/gpt-4o", "opneai"),
    ],
)
def test_a_deployment_tollgate_cannot_serve_is_imported_disabled_and_the_rest_as_written(caplog, name, model, provider):
    summary = apply_config(parse_config(UNSERVABLE % {"name": name, "model": model}))

    assert (summary.created, summary.disabled) == (3, 1)
    assert "1 disabled" in str(summary)
    bad = Deployment.objects.get(model_id="bad-1")
    assert (bad.model_name, bad.litellm_model, bad.enabled) == (name, model, False)
    assert f"provider {provider!r} is not supported" in bad.disabled_reason
    assert set(Deployment.objects.filter(enabled=True).values_list("model_id", "disabled_reason")) == {
        ("good-1", ""),
        ("good-2", ""),
    }
    (warning,) = [record for record in caplog.records if record.levelname == "WARNING"]
    assert name in warning.getMessage() and bad.disabled_reason in warning.getMessage()
    assert "sk-unservable-secret-8080" not in caplog.text


@pytest.mark.django_db
def test_a_deployment_that_becomes_servable_is_enabled_again_on_the_next_import():
    apply_config(parse_config(UNSERVABLE % {"name": "later", "model": "watsonx/ibm/granite-13b-chat-v2"}))

    apply_config(parse_config(UNSERVABLE % {"name": "later", "model": "openai/gpt-4o-mini"}))

    later = Deployment.objects.get(model_id="bad-1")
    assert (later.enabled, later.disabled_reason) == (True, "")


LITELLM_EXTRAS = """
model_list:
  - model_name: demo
    litellm_params: {model: mock/demo}
litellm_settings:
  num_retries: 4
  success_callback: ["langfuse"]
  cache: true
router_settings:
  routing_strategy: least-busy
  redis_host: localhost
general_settings:
  master_key: sk-master-from-file
  alerting: ["slack"]
"""


@pytest.mark.django_db
def test_settings_tollgate_does_not_apply_are_reported_once_in_the_log_and_the_summary(caplog):
    caplog.set_level("WARNING", logger="gateway.config_import")

    summary = apply_config(parse_config(LITELLM_EXTRAS))

    unsupported = [
        "litellm_settings.success_callback",
        "litellm_settings.cache",
        "router_settings.redis_host",
        "general_settings.alerting",
    ]
    assert summary.unsupported == unsupported
    assert str(summary).endswith("; not supported, ignored: " + ", ".join(unsupported))
    warned = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert warned == [f"config setting {name} is not supported by Tollgate: ignored" for name in unsupported]
    router = RouterSettings.load()
    assert (router.num_retries, router.routing_strategy) == (4, "least-busy")  # the supported ones apply


@pytest.mark.django_db
def test_routing_strategy_args_are_stored_with_the_router_settings():
    apply_config(
        parse_config(
            "router_settings:\n  routing_strategy: latency-based-routing\n  routing_strategy_args: {ttl: 60}\n"
        )
    )

    assert RouterSettings.load().routing_strategy_args == {"ttl": 60.0}
