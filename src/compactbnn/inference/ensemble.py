"""Deep ensembles (Experiment C of PAPER.md): K MAP-trained members from independent inits.

The paper's ensemble: 5 members, each from its own PyTorch-default initialisation, trained with
Adam (lr 1e-3), batch 100, 50 epochs, on the MAP objective with the N(0, 1) prior,
``mean NLL + sum(theta^2) / (2 N_train)``. Members are trained together by ``train.train_many``
(vmapped, one epoch as one ``lax.scan``); each member has its own data order.
"""

from __future__ import annotations

from typing import Mapping

import jax

from compactbnn import train
from compactbnn.models import Model

# PAPER.md, Experiment C: Adam lr 1e-3, batch 100, 50 epochs, MAP with the N(0, 1) prior.
PAPER_CONFIG = train.TrainConfig(optimizer="adam", learning_rate=1e-3, batch_size=100, epochs=50, prior_sd=1.0)
PAPER_NUM_MEMBERS = 5


def train_ensemble(
    model: Model,
    key: jax.Array,
    x,
    y,
    num_members: int,
    config: train.TrainConfig = PAPER_CONFIG,
    *,
    evaluate_on: Mapping[str, tuple] | None = None,
    progress: bool | str = True,
) -> train.TrainResult:
    """Train ``num_members`` networks of ``model`` from independent initialisations and independent data orders.

    ``key`` is split once into an init key (``model.init_many``: member m gets its own
    PyTorch-default draw) and a data key (split into one key per member, so member m's
    minibatch order does not depend on the others). Returns ``train.TrainResult`` whose
    ``params`` are stacked along a leading member axis (num_members, ...), the form that
    ``compact.q_direct``, ``compact.q_rebasin`` and ``metrics.predictive`` take.

    ``config`` is any ``train.TrainConfig``; the paper's is ``PAPER_CONFIG``. With
    ``config.prior_sd=None`` the members are maximum-likelihood fits rather than MAP.
    """
    if isinstance(num_members, bool) or not isinstance(num_members, int) or num_members < 1:
        raise ValueError(f"num_members must be a positive integer, got {num_members!r}")
    if not isinstance(config, train.TrainConfig):
        raise TypeError(f"config must be a train.TrainConfig, got {type(config).__name__}")
    init_key, data_key = jax.random.split(key)
    params = model.init_many(init_key, num_members)
    data_keys = jax.random.split(data_key, num_members)
    label = progress if isinstance(progress, str) else f"ensemble of {num_members}"
    return train.train_many(
        model, params, x, y, data_keys, config, evaluate_on=evaluate_on, progress=label if progress else False
    )
