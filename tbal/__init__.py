"""tbal: threshold-based auto-labeling with a guarantee (the pure library: numpy + torch only)."""

__version__ = "0.1.0"
