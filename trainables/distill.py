"""Knowledge distillation: the unpruned model, fine-tuned, teaches its pruned student.

Classification follows Hinton et al.: the student's loss is
``(1 - alpha) * CE(student, labels) + alpha * T**2 * KL(softmax(teacher / T) || softmax(student / T))``;
the ``T**2`` keeps the soft term's gradients on the scale of the hard one's as T grows.

Sentence embeddings use the teacher's similarities as soft labels, Hinton's soft targets for a similarity: the
STS phase's loss becomes ``(1 - alpha) * STS loss + alpha * mean (cos(s_a, s_b) - cos(t_a, t_b))**2`` over the
batch's pairs, the student's cosine of each training pair pulled towards the tuned teacher's. It is the cosine
STS loss's own kind and scale (a squared error between cosines). Pulling each *embedding* towards the
teacher's instead, as sentence-transformers' distillation examples do (``MSELoss``), cost 1 to 4 points of
Spearman at every depth measured (``docs/benchmarks.md`` §7): the pull (``2 - 2 cos``, about 1.5 for a pruned
student) outweighed the STS loss (0.03 to 0.17) many times over. No temperature. Measured with the cosine STS
loss, the default; CoSENT's values are larger, so with ``sts_loss: cosent`` the same alpha pulls less.

The teacher's outputs on the training rows are computed once (:func:`teacher_logits`,
:func:`teacher_embeddings`), never per batch: a trial never runs the teacher itself.
"""

from __future__ import annotations

from typing import Any

from prunetune.config import DistillConfig
from prunetune.libs import torch

__all__ = [
    "TRAIN_OUTPUTS", "describe", "distill_loss", "similarity_distill_loss", "teacher_embeddings", "teacher_logits"
]  # fmt: skip


# A job's result key for its trained model's outputs on the training rows (a classifier's logits, a sentence
# model's embeddings): a search's teacher job returns them.
TRAIN_OUTPUTS = "train_outputs"


def distill_loss(student: Any, labels: Any, teacher: Any, alpha: float, temperature: float) -> Any:
    """The distillation loss of one batch: ``student`` and ``teacher`` logits (rows x classes), ``labels``."""
    functional = torch.nn.functional
    hard = functional.cross_entropy(student, labels)
    if alpha == 0:
        return hard
    soft = functional.kl_div(
        functional.log_softmax(student / temperature, dim=-1),
        functional.log_softmax(teacher / temperature, dim=-1),
        log_target=True,
        reduction="batchmean",
    )
    return (1 - alpha) * hard + alpha * temperature**2 * soft


def similarity_distill_loss(hard: Any, student: tuple[Any, Any], teacher: tuple[Any, Any], alpha: float) -> Any:
    """The STS phase's loss of one batch with distillation: ``hard`` is the STS loss; ``student`` and
    ``teacher`` are the embeddings of the batch's first sentences and of its second ones (rows x dimensions)."""
    if alpha == 0:
        return hard
    cosine = torch.nn.functional.cosine_similarity
    soft = (cosine(*student, dim=-1) - cosine(*teacher, dim=-1)).pow(2).mean()
    return (1 - alpha) * hard + alpha * soft


def teacher_logits(teacher: Any, batches: Any, rows: int, batch_size: int) -> Any:
    """The ``teacher`` model's logits on every training row, in row order, as one float32 CPU tensor.
    ``batches(indices)`` gives the padded batch of those rows (on the teacher's device)."""
    was_training = teacher.training
    teacher.eval()
    found = []
    with torch.inference_mode():
        for first in range(0, rows, batch_size):
            indices = list(range(first, min(first + batch_size, rows)))
            found.append(teacher(**batches(indices)).logits.float().cpu())
    teacher.train(was_training)
    return torch.cat(found)


def teacher_embeddings(model: Any, sentences: list[str], batch_size: int) -> Any:
    """A sentence-transformers ``model``'s embeddings of ``sentences``, in order, as one float32 CPU tensor."""
    found = model.encode(sentences, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False)
    return found.float().cpu()


def describe(config: DistillConfig) -> str:
    return f"alpha {config.alpha:g}, T {config.temperature:g}" if config.on else "none"
