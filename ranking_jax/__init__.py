"""ranking_jax: ranking-based losses for deep visual learning in JAX/Flax."""

__version__ = "0.1.0"
