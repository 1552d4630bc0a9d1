"""Surgery on tiny random models of every supported family, and on the packaged all-MiniLM-L6-v2."""

from __future__ import annotations

import pytest
import torch
from prunetune.trainables.surgery import SurgeryError, keep_layers, layers_of, num_layers, parameter_count

from tests.helpers import FAMILIES, MINILM, tiny_config


def inputs() -> dict[str, torch.Tensor]:
    ids = torch.randint(5, 99, (3, 11), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("head", ["bare", "classifier"])
def test_pruned_model_keeps_weights_saves_and_reloads_identically(family: str, head: str, tmp_path) -> None:
    from transformers import AutoModel, AutoModelForSequenceClassification

    cls = AutoModel if head == "bare" else AutoModelForSequenceClassification
    torch.manual_seed(0)
    model = cls.from_config(tiny_config(family, layers=5)).eval()
    originals = [layers_of(model)[i] for i in (0, 2, 4)]
    before = parameter_count(model)

    keep_layers(model, [4, 0, 2])

    assert num_layers(model) == 3 and model.config.num_hidden_layers == 3
    assert all(a is b for a, b in zip(layers_of(model), originals, strict=True))  # same modules, same weights
    assert parameter_count(model) < before
    assert model.config.prunetune_kept_layers == [0, 2, 4]
    with torch.no_grad():
        out = model(**inputs())
    model.save_pretrained(tmp_path)
    reloaded = cls.from_pretrained(tmp_path).eval()
    assert num_layers(reloaded) == 3
    with torch.no_grad():
        again = reloaded(**inputs())
    first = out.last_hidden_state if head == "bare" else out.logits
    second = again.last_hidden_state if head == "bare" else again.logits
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_pruning_twice_records_original_indices() -> None:
    from transformers import AutoModel

    model = AutoModel.from_config(tiny_config("bert", layers=6))
    keep_layers(model, [1, 3, 5])
    keep_layers(model, [0, 2])
    assert model.config.prunetune_kept_layers == [1, 5]
    assert [m.layer_idx for m in model.modules() if isinstance(getattr(m, "layer_idx", None), int)][-1] == 1


def test_refusals_name_the_problem() -> None:
    from transformers import AutoModel

    with pytest.raises(SurgeryError, match="ALBERT shares one set of weights.*supported: bert"):
        keep_layers(AutoModel.from_config(tiny_config("albert")), [0])
    model = AutoModel.from_config(tiny_config("bert", layers=4))
    with pytest.raises(ValueError, match="out of range"):
        keep_layers(model, [0, 4])
    with pytest.raises(ValueError, match="repeated"):
        keep_layers(model, [1, 1])
    with pytest.raises(ValueError, match="keeps none"):
        keep_layers(model, [])
    assert num_layers(model) == 4  # a refused call changes nothing
    with pytest.raises(SurgeryError, match="not a Hugging Face model"):
        keep_layers(torch.nn.Linear(2, 2), [0])


def test_unknown_architecture_lists_the_supported_ones() -> None:
    from transformers import GPT2Config, GPT2Model

    with pytest.raises(SurgeryError, match="unsupported architecture 'gpt2'; supported: bert, deberta-v2, distilbert"):
        keep_layers(GPT2Model(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=99)), [0])


def test_packaged_minilm_as_sentence_transformer(tmp_path) -> None:
    from prunetune.trainables.models import resolve_model
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(resolve_model(MINILM), device="cpu")
    assert num_layers(st) == 6
    keep_layers(st, [0, 1, 4, 5])
    sentences = ["Layer pruning keeps the encoder small.", "A second, longer sentence with more tokens in it."]
    first = st.encode(sentences, convert_to_tensor=True)
    st.save(str(tmp_path))
    reloaded = SentenceTransformer(str(tmp_path), device="cpu")
    assert num_layers(reloaded) == 4
    assert reloaded[0].auto_model.config.prunetune_kept_layers == [0, 1, 4, 5]
    torch.testing.assert_close(first, reloaded.encode(sentences, convert_to_tensor=True), rtol=0, atol=0)


def test_packaged_minilm_as_classifier(tmp_path) -> None:
    from prunetune.trainables.models import load_classifier, resolve_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = load_classifier(MINILM, ("neg", "pos")).eval()
    keep_layers(model, [0, 5])
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(MINILM))
    batch = tokenizer(["good news", "bad news today"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.id2label == {0: "neg", 1: "pos"}
    with torch.no_grad():
        torch.testing.assert_close(logits, reloaded(**batch).logits, rtol=0, atol=0)


@pytest.mark.parametrize("family", ["bert", "deberta-v2", "distilbert"])
def test_scratch_baseline_reinitialises_every_weight(family: str, tmp_path) -> None:
    from prunetune.trainables.models import prepare
    from transformers import AutoModelForSequenceClassification

    from prunetune.config import TrialConfig

    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(tiny_config(family, layers=4)).save_pretrained(tmp_path)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path)  # marked "initialised" by loading
    before = {k: v.clone() for k, v in model.state_dict().items()}
    baseline = prepare(model, TrialConfig(variant="scratch"), (0, 1))
    assert baseline.kind == "random-init" and num_layers(model) == 2
    after = model.state_dict()
    changed = [
        k for k, v in after.items() if v.dtype.is_floating_point and v.std() > 0 and not torch.equal(v, before[k])
    ]
    weights = [k for k, v in after.items() if v.dtype.is_floating_point and v.ndim == 2]
    assert set(weights) <= set(changed)
