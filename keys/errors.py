"""Why a caller is refused. The gateway maps each class to its HTTP status (401, 403, 400, 429, 503)."""


class KeyRefusal(Exception):
    code = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None, headers=None):
        super().__init__(message)
        self.code = code or self.code
        self.param = param
        self.headers = headers or {}


class AuthenticationFailed(KeyRefusal):
    code = "invalid_api_key"


class AccessDenied(KeyRefusal):
    code = "key_model_access_denied"


class BudgetExceeded(KeyRefusal):
    code = "budget_exceeded"


class RateLimited(KeyRefusal):
    code = "rate_limit_exceeded"


class BudgetsUnavailable(KeyRefusal):
    """Budgets cannot be checked (their counters need the database, which does not answer): nothing is admitted."""

    code = "budgets_unavailable"
