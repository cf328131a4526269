"""Run under ``torchrun --nproc_per_node 2``: DDP's gradients on half a batch per rank must
equal one process's gradients on the whole batch, for dense and for sparse embeddings.

Prints one line ``rank 0 ok dense=<max error> sparse=<max error>`` on rank 0; exits 1 on a
mismatch. Used by ``tests/test_distributed.py``.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from tripletrec.models.scorers import BilinearScorer, TripletNet
from tripletrec.training.distributed import init_distributed
from tripletrec.training.loop import BatchScores
from tripletrec.training.losses import get_loss


def scorer(sparse: bool) -> BilinearScorer:
    model = BilinearScorer(100, 50, 8, "dot", True, 0.05, torch.Generator().manual_seed(0))
    for table in (model.user_embedding, model.item_embedding, model.item_bias):
        table.sparse = sparse
    return model


def dense_grads(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.to_dense() if p.grad.is_sparse else p.grad for p in model.parameters()]


def main() -> int:
    context = init_distributed()
    generator = torch.Generator().manual_seed(1)
    users, positives, negatives = (
        torch.randint(0, n, (64,), generator=generator) for n in (100, 50, 50)
    )
    mine = slice(context.rank * 32, (context.rank + 1) * 32)
    loss = get_loss("bpr", 1.0)
    errors = {}
    for sparse in (False, True):
        whole = scorer(sparse)
        loss(*BatchScores(TripletNet(whole))(users, positives, negatives)).backward()
        shard = scorer(sparse)
        ddp = nn.parallel.DistributedDataParallel(BatchScores(TripletNet(shard)))
        loss(*ddp(users[mine], positives[mine], negatives[mine])).backward()
        assert all(p.grad.is_sparse == sparse for p in shard.parameters())
        errors[sparse] = max(
            float((a - b).abs().max()) for a, b in zip(dense_grads(shard), dense_grads(whole))
        )
        del ddp  # a DDP wrapper must not outlive the process group
    context.close()
    if context.is_main:
        print(f"rank 0 ok dense={errors[False]:.3g} sparse={errors[True]:.3g}")
    return 0 if max(errors.values()) < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
