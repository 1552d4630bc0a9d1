"""prunetune: find how many transformer layers a task can do without, and which.

Sub-packages: ``prunetune.trainables`` (surgery, strategies, data, fine-tuning jobs),
``prunetune.search`` (the distributed search) and ``prunetune.analysis`` (queries, tables, plots).
"""

__version__ = "0.1.0"
