"""Knowledge distillation: the unpruned model, fine-tuned, teaches its pruned student.

Classification follows Hinton et al.: the student's loss is
``(1 - alpha) * CE(student, labels) + alpha * T**2 * KL(softmax(teacher / T) || softmax(student / T))``;
the ``T**2`` keeps the soft term's gradients on the scale of the hard one's as T grows.

Sentence embeddings follow sentence-transformers' distillation examples (``MSELoss``): the student's
embedding of each training sentence is pulled towards the teacher's. The pull joins the STS phase:
``(1 - alpha) * STS loss + alpha * |student - teacher|**2``, the squared distance summed over the dimensions
and averaged over the sentences (sentence-transformers' ``MSELoss`` averages over the dimensions too, which
on 384 dimensions would make the pull ~400 times weaker than the STS loss it is mixed with). On normalised
embeddings it is ``2 - 2 cos(student, teacher)``, on the scale of the cosine STS loss. No temperature.

The teacher's outputs on the training rows are computed once (:func:`teacher_logits`,
:func:`teacher_embeddings`), never per batch: a trial never runs the teacher itself.
"""

from __future__ import annotations

from typing import Any

from prunetune.trainables.config import DistillConfig

from prunetune.libs import torch

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


def embedding_distill_loss(hard: Any, student: Any, teacher: Any, alpha: float) -> Any:
    """The STS phase's loss of one batch with distillation: ``hard`` is the STS loss, ``student`` and
    ``teacher`` the embeddings of the batch's sentences (rows x dimensions)."""
    if alpha == 0:
        return hard
    pull = (student - teacher).pow(2).sum(dim=-1).mean()
    return (1 - alpha) * hard + alpha * pull


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
