"""Why a caller is refused: each class declares its HTTP status (and its OpenAI type where LiteLLM names one)."""

from pricing.errors import TollgateError


class KeyRefusal(TollgateError, code="invalid_request"):
    """Any refusal of the caller's key, user, team or customer."""


class AuthenticationFailed(KeyRefusal, status=401, code="invalid_api_key"):
    """No key, or one that is unknown, blocked or expired."""


class AccessDenied(KeyRefusal, status=403, code="key_model_access_denied"):
    """The key is valid but it (or its team or user) may not call this model."""


class CustomerBlocked(AccessDenied, code="customer_blocked"):
    """The call names a customer (end user) that is blocked (/customer/block)."""


class MissingParam(KeyRefusal, code="missing_param"):
    """The call's body lacks a param its key enforces (the key's enforced_params)."""


# LiteLLM answers a spent budget with this type (ProxyErrorTypes.budget_exceeded) and a 400; clients read it.
class BudgetExceeded(KeyRefusal, error_type="budget_exceeded", code="budget_exceeded"):
    """A budget of the key, its user, team or customer is spent."""


class RateLimited(KeyRefusal, status=429, code="rate_limit_exceeded"):
    """A requests, tokens or parallel-calls limit is reached; retry-after says when to try again."""


class BudgetsUnavailable(KeyRefusal, status=503, code="budgets_unavailable"):
    """Budgets cannot be checked (their counters need the database, which does not answer): nothing is admitted."""
