"""learnct: learned low-dose CT reconstruction with PyTorch Lightning."""

__version__ = "0.1.0"
