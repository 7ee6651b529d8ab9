"""Every provider whose API is OpenAI's, by LiteLLM's name: its default api_base and the environment variables
LiteLLM reads its key (and an api_base override) from.

Data, not code: each row becomes an OpenAICompatibleProvider. The names, addresses and variables are LiteLLM's
(litellm/constants.py `openai_compatible_providers` and each provider's `_get_openai_compatible_provider_info`),
so a config.yaml written for LiteLLM's proxy reaches the same upstream with the same environment. A provider with no
default address (a server you run: vLLM, LM Studio...) needs api_base in the config or its *_API_BASE variable.
"""

from typing import NamedTuple


class Compatible(NamedTuple):
    default_api_base: str | None
    api_key_env: tuple[str, ...]
    api_base_env: tuple[str, ...] = ()


OPENAI_COMPATIBLE: dict[str, Compatible] = {
    "ai21_chat": Compatible("https://api.ai21.com/studio/v1", ("AI21_API_KEY",), ("AI21_API_BASE",)),
    "anyscale": Compatible("https://api.endpoints.anyscale.com/v1", ("ANYSCALE_API_KEY",), ("ANYSCALE_API_BASE",)),
    "cerebras": Compatible("https://api.cerebras.ai/v1", ("CEREBRAS_API_KEY",), ("CEREBRAS_API_BASE",)),
    "codestral": Compatible("https://codestral.mistral.ai/v1", ("CODESTRAL_API_KEY",), ("CODESTRAL_API_BASE",)),
    "custom_openai": Compatible(None, ()),
    "dashscope": Compatible(
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", ("DASHSCOPE_API_KEY",), ("DASHSCOPE_API_BASE",)
    ),
    "deepinfra": Compatible("https://api.deepinfra.com/v1/openai", ("DEEPINFRA_API_KEY",), ("DEEPINFRA_API_BASE",)),
    "deepseek": Compatible("https://api.deepseek.com/beta", ("DEEPSEEK_API_KEY",), ("DEEPSEEK_API_BASE",)),
    "empower": Compatible("https://app.empower.dev/api/v1", ("EMPOWER_API_KEY",), ("EMPOWER_API_BASE",)),
    "featherless_ai": Compatible("https://api.featherless.ai/v1", ("FEATHERLESS_AI_API_KEY", "FEATHERLESS_API_KEY")),
    "fireworks_ai": Compatible(
        "https://api.fireworks.ai/inference/v1",
        ("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY", "FIREWORKS_AI_TOKEN"),
        ("FIREWORKS_API_BASE",),
    ),
    "friendliai": Compatible(
        "https://api.friendli.ai/serverless/v1", ("FRIENDLIAI_API_KEY", "FRIENDLI_TOKEN"), ("FRIENDLI_API_BASE",)
    ),
    "galadriel": Compatible("https://api.galadriel.com/v1", ("GALADRIEL_API_KEY",), ("GALADRIEL_API_BASE",)),
    "github": Compatible("https://models.inference.ai.azure.com", ("GITHUB_API_KEY",), ("GITHUB_API_BASE",)),
    "groq": Compatible("https://api.groq.com/openai/v1", ("GROQ_API_KEY",), ("GROQ_API_BASE",)),
    "hosted_vllm": Compatible(None, ("HOSTED_VLLM_API_KEY",), ("HOSTED_VLLM_API_BASE",)),
    "huggingface": Compatible("https://router.huggingface.co/v1", ("HF_TOKEN", "HUGGINGFACE_API_KEY")),
    "litellm_proxy": Compatible(None, ("LITELLM_PROXY_API_KEY",), ("LITELLM_PROXY_API_BASE",)),
    "llamafile": Compatible("http://127.0.0.1:8080/v1", ("LLAMAFILE_API_KEY",), ("LLAMAFILE_API_BASE",)),
    "lm_studio": Compatible(None, ("LM_STUDIO_API_KEY",), ("LM_STUDIO_API_BASE",)),
    "meta_llama": Compatible("https://api.llama.com/compat/v1", ("LLAMA_API_KEY",), ("LLAMA_API_BASE",)),
    "mistral": Compatible("https://api.mistral.ai/v1", ("MISTRAL_API_KEY", "MISTRAL_AZURE_API_KEY")),
    "moonshot": Compatible("https://api.moonshot.ai/v1", ("MOONSHOT_API_KEY",), ("MOONSHOT_API_BASE",)),
    "nebius": Compatible("https://api.studio.nebius.ai/v1", ("NEBIUS_API_KEY",), ("NEBIUS_API_BASE",)),
    "novita": Compatible("https://api.novita.ai/v3/openai", ("NOVITA_API_KEY",), ("NOVITA_API_BASE",)),
    "nscale": Compatible("https://inference.api.nscale.com/v1", ("NSCALE_API_KEY",), ("NSCALE_API_BASE",)),
    "nvidia_nim": Compatible("https://integrate.api.nvidia.com/v1", ("NVIDIA_NIM_API_KEY",), ("NVIDIA_NIM_API_BASE",)),
    "openrouter": Compatible(
        "https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY", "OR_API_KEY"), ("OPENROUTER_API_BASE",)
    ),
    "perplexity": Compatible(
        "https://api.perplexity.ai", ("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"), ("PERPLEXITY_API_BASE",)
    ),
    "sambanova": Compatible("https://api.sambanova.ai/v1", ("SAMBANOVA_API_KEY",), ("SAMBANOVA_API_BASE",)),
    "together_ai": Compatible(
        "https://api.together.xyz/v1",
        ("TOGETHER_API_KEY", "TOGETHER_AI_API_KEY", "TOGETHERAI_API_KEY", "TOGETHER_AI_TOKEN"),
        ("TOGETHER_AI_API_BASE",),
    ),
    "volcengine": Compatible(
        "https://ark.cn-beijing.volces.com/api/v3", ("VOLCENGINE_API_KEY",), ("VOLCENGINE_API_BASE",)
    ),
    "xai": Compatible("https://api.x.ai/v1", ("XAI_API_KEY",), ("XAI_API_BASE",)),
    "xinference": Compatible("http://127.0.0.1:9997/v1", ("XINFERENCE_API_KEY",), ("XINFERENCE_API_BASE",)),
}
