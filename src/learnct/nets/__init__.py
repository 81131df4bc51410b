"""Networks (plain ``nn.Module``s) used by the reconstruction methods in ``learnct.methods``.

The operator is never a registered parameter of a net: nets that use it take it as callables
``op`` (images -> sinograms) and ``op_adjoint`` (sinograms -> images) in ``forward``.
"""

from learnct.nets.blocks import ConvBlock
from learnct.nets.gradient_descent import LearnedGradientDescentNet, tv_gradient
from learnct.nets.learned_inverse import LearnedInverseNet, learned_inverse_memory
from learnct.nets.primal_dual import LearnedPrimalDualNet
from learnct.nets.unet import UNet

__all__ = [
    "ConvBlock",
    "LearnedGradientDescentNet",
    "LearnedInverseNet",
    "LearnedPrimalDualNet",
    "UNet",
    "learned_inverse_memory",
    "tv_gradient",
]
