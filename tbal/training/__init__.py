"""Training classifiers with hard, soft or sampled labels, the train-time methods, and AUM:

- :mod:`tbal.training.train`: :func:`~tbal.training.train.train_classifier` (seeded SGD on target
  distributions; ``TrainConfig.targets`` says how they are used) and :func:`~tbal.training.train.one_hot`;
- :mod:`tbal.training.run`: one run's seeded streams and batches (also DUQ's, :mod:`tbal.uncertainty`);
- :mod:`tbal.training.objectives`: the train-time methods (``TrainConfig.method``) as objectives;
- :mod:`tbal.training.augment`: the augmentations and their labels (label smoothing, mixup, CutMix,
  AutoLabel) that the objectives use;
- :mod:`tbal.training.margins`: margins, eval-mode logits and saliency, shared by AUM and saliency mixup;
- :mod:`tbal.training.aum`: area under the margin, the label-quality signal of a training run;
- :mod:`tbal.training.soft_labels`: several human labels per item turned into the targets training takes
  (vote distributions, majority vote, one sampled vote, Dawid–Skene). numpy only.
- :mod:`tbal.training.self_training`: which unlabeled points (pool and validation alike) a second
  classifier takes as pseudo-labels, and why the certificate stays valid. numpy only.

Nothing is imported here, so that :mod:`tbal.training.soft_labels` loads without torch. A trained model's
outputs come from :func:`tbal.predictions.predict` (below training and the confidence functions).
"""
