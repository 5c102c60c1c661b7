"""Seed ranges: seeds >= 1,000,000 are held out for evaluation, and training must refuse them."""

EVALUATION_SEED_START = 1_000_000


class EvaluationSeedError(ValueError):
    """A training code path was handed a seed reserved for evaluation."""


def require_training_seed(seed: int) -> int:
    if not 0 <= seed < EVALUATION_SEED_START:
        raise EvaluationSeedError(
            f"seed {seed} is reserved for evaluation (training seeds are 0..{EVALUATION_SEED_START - 1})"
        )
    return seed


def is_evaluation_seed(seed: int) -> bool:
    return seed >= EVALUATION_SEED_START
