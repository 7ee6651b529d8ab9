"""Pricing refusals."""


class UnpricedModelBlocked(Exception):
    """BLOCK_UNPRICED_MODELS is on and no price could be found for the deployment a call would use."""

    code = "unpriced_model"

    def __init__(self, model_group: str):
        super().__init__(
            f"No price is known for model group {model_group!r} and BLOCK_UNPRICED_MODELS is on: "
            "set custom pricing or base_model on its deployments."
        )
        self.param = "model"
