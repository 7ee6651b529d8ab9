"""Tollgate's one error vocabulary: every refusal any app raises is a TollgateError that declares its HTTP status and
its OpenAI error `type`; the gateway alone turns one into a response (gateway.proxy.errors.error_response), for the
proxy, the management API and /health alike.

It lives in pricing, the lowest app, so that keys, spend and the gateway all raise it without importing upwards.
"""

# One OpenAI error `type` per HTTP status, as LiteLLM's proxy answers: a refused key is "auth_error" (its
# user_api_key_auth raises ProxyErrorTypes.auth_error), and so is a key that may not do what it asked (403).
_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "auth_error",
    403: "auth_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def error_type_for(status: int) -> str:
    """The OpenAI error type of a status: the table's, "api_error" for any 5xx, "invalid_request_error" otherwise."""
    if status >= 500:
        return "api_error"
    return _TYPE_BY_STATUS.get(status, "invalid_request_error")


class TollgateError(Exception):
    """A refusal that the caller is told about: status, type, code and param of the OpenAI error shape, and headers
    (retry-after) for the response. `error_type` None means the status's type; a class names its own only where
    LiteLLM does (budget_exceeded).

    A subclass declares what differs from its parent in its header, `class RateLimited(KeyRefusal, status=429,
    code="rate_limit_exceeded")`, so the vocabulary reads as a table; an instance may override code, param and
    status again."""

    status: int = 400
    error_type: str | None = None
    code: str | None = None
    param: str | None = None

    def __init_subclass__(
        cls,
        *,
        status: int | None = None,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        **kwargs,
    ):
        super().__init_subclass__(**kwargs)
        declared = {"status": status, "error_type": error_type, "code": code, "param": param}
        for name, value in declared.items():
            if value is not None:
                setattr(cls, name, value)

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if param is not None:
            self.param = param
        if status is not None:
            self.status = status
        self.headers = headers or {}

    @property
    def openai_type(self) -> str:
        return self.error_type or error_type_for(self.status)


class UnpricedModelBlocked(TollgateError, code="unpriced_model", param="model"):
    """BLOCK_UNPRICED_MODELS is on and no price could be found for the deployment a call would use."""

    def __init__(self, model_group: str):
        super().__init__(
            f"No price is known for model group {model_group!r} and BLOCK_UNPRICED_MODELS is on: "
            "set custom pricing or base_model on its deployments."
        )
