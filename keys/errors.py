"""Why a caller is refused: each class declares its HTTP status (and its OpenAI type where LiteLLM names one)."""

from pricing.errors import TollgateError


class KeyRefusal(TollgateError):
    code = "invalid_request"


class AuthenticationFailed(KeyRefusal):
    status = 401
    code = "invalid_api_key"


class AccessDenied(KeyRefusal):
    status = 403
    code = "key_model_access_denied"


class CustomerBlocked(AccessDenied):
    """The call names a customer (end user) that is blocked (/customer/block)."""

    code = "customer_blocked"


class BudgetExceeded(KeyRefusal):
    # LiteLLM answers a spent budget with this type (ProxyErrorTypes.budget_exceeded) and a 400; clients read it.
    error_type = "budget_exceeded"
    code = "budget_exceeded"


class RateLimited(KeyRefusal):
    status = 429
    code = "rate_limit_exceeded"


class BudgetsUnavailable(KeyRefusal):
    """Budgets cannot be checked (their counters need the database, which does not answer): nothing is admitted."""

    status = 503
    code = "budgets_unavailable"
