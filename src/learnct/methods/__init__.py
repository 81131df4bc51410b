"""Reconstruction methods as LightningModules on one shared base (:class:`ReconstructionMethod`).

=========================  ====================================================  ==========
class                      method                                                trainable
=========================  ====================================================  ==========
``FBP``                    filtered backprojection                               no
``TV``                     total variation by Chambolle-Pock                     no
``LearnedInverse``         fully learned (data -> image, no operator)            yes
``FBPUNet``                FBP + residual U-Net (learned post-processing)        yes
``LearnedGradientDescent`` learned gradient descent (Adler and Öktem 2017)       yes
``LearnedPrimalDual``      Learned Primal-Dual (Adler and Öktem 2018)            yes
=========================  ====================================================  ==========

Each takes the run's ``RayTransform`` as ``operator`` and has ``reconstruct(sinogram)``.
"""

from learnct.methods.base import LOSSES, ReconstructionMethod
from learnct.methods.classical import FBP, TV, chambolle_pock_tv, chambolle_pock_tv_iterates
from learnct.methods.learned import (
    FBPUNet,
    LearnedGradientDescent,
    LearnedInverse,
    LearnedPrimalDual,
)

#: Method names (as in configs/model) -> classes.
METHODS: dict[str, type[ReconstructionMethod]] = {
    "fbp": FBP,
    "tv": TV,
    "learned_inverse": LearnedInverse,
    "fbpunet": FBPUNet,
    "lgd": LearnedGradientDescent,
    "lpd": LearnedPrimalDual,
}

__all__ = [
    "FBP",
    "LOSSES",
    "METHODS",
    "TV",
    "FBPUNet",
    "LearnedGradientDescent",
    "LearnedInverse",
    "LearnedPrimalDual",
    "ReconstructionMethod",
    "chambolle_pock_tv",
    "chambolle_pock_tv_iterates",
]
