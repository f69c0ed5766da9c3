from gan_cli.losses.adversarial import (
    GanLoss,
    Hinge,
    LeastSquares,
    Minimax,
    NonSaturating,
    Wasserstein,
    WassersteinGP,
    gradient_penalty,
)

__all__ = ["GanLoss", "Minimax", "NonSaturating", "LeastSquares", "Hinge", "Wasserstein", "WassersteinGP", "gradient_penalty"]
