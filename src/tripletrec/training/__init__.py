"""How triplet models learn: losses, negative samplers, the epoch loop, the fused step and
data parallelism."""
