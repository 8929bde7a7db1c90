"""Mixture of Token Experts: routes each expert token to its top-k low-rank experts."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Routing:
    probs: torch.Tensor      # (B, T, E) softmax of the (noisy, in training) router logits
    experts: torch.Tensor    # (B, T, k) indices of the chosen experts


class MixtureOfTokenExperts(nn.Module):
    """Router `x·W_g` (zero init) with training noise `softplus(x·W_n) + floor`, top-k gate.

    Each expert is a low-rank map D→rank; the shared rank→hidden→D projections follow. With k = 1
    the gate is straight-through: its forward value is 1 and its gradient is that of the chosen
    expert's softmax probability, so the router learns while the token keeps its scale.
    """

    def __init__(self, dim: int, num_experts: int, rank: int, hidden: int, active: int = 1,
                 noise_floor: float = 1e-2):
        super().__init__()
        self.num_experts = num_experts
        self.active = active
        self.noise_floor = noise_floor
        self.w_gate = nn.Parameter(torch.zeros(dim, num_experts))
        self.w_noise = nn.Parameter(torch.zeros(dim, num_experts))
        self.down = nn.Parameter(torch.randn(num_experts, dim, rank) * dim ** -0.5)
        self.shared = nn.Linear(rank, hidden)
        self.up = nn.Linear(hidden, dim)
        # Small output so an untrained adapter barely perturbs the frozen decoder's tokens.
        nn.init.normal_(self.up.weight, std=1e-3)
        nn.init.zeros_(self.up.bias)

    def route(self, tokens: torch.Tensor) -> Routing:
        logits = tokens @ self.w_gate
        if self.training:
            noise_std = F.softplus(tokens @ self.w_noise) + self.noise_floor
            logits = logits + torch.randn_like(logits) * noise_std
        probs = logits.float().softmax(dim=-1).to(tokens.dtype)
        experts = probs.topk(self.active, dim=-1).indices
        return Routing(probs=probs, experts=experts)

    def gates(self, routing: Routing) -> torch.Tensor:
        chosen = routing.probs.gather(-1, routing.experts)  # (B, T, k)
        if self.active == 1:
            return chosen - chosen.detach() + 1.0  # c - c is exactly 0, so the forward value is exactly 1
        return chosen / chosen.sum(dim=-1, keepdim=True)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, Routing]:
        routing = self.route(tokens)
        gates = self.gates(routing)
        # Every expert's low-rank map for every token, then pick: with only E expert tokens this
        # costs little, and unlike indexing the weights its backward is deterministic on CPU.
        all_experts = torch.einsum("btd,edr->bter", tokens, self.down)      # (B, T, E, rank)
        output = torch.zeros_like(tokens)
        for slot in range(self.active):
            index = routing.experts[..., slot, None, None].expand(-1, -1, 1, all_experts.shape[-1])
            hidden = all_experts.gather(2, index).squeeze(2)
            hidden = F.gelu(self.shared(F.gelu(hidden)))
            output = output + self.up(hidden) * gates[..., slot:slot + 1]
        return output, routing


def coefficient_of_variation_squared(values: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """CV² = population variance / mean²."""
    values = values.float()
    return values.var(unbiased=False) / (values.mean() ** 2 + eps)


def load_balance_loss(routings: list[Routing]) -> torch.Tensor:
    """Mean over MoTE layers of CV²(importance) + CV²(load).

    importance = summed router probabilities per expert; load = number of tokens routed to each
    expert (a count: it carries no gradient, importance does).
    """
    losses = []
    for routing in routings:
        num_experts = routing.probs.shape[-1]
        importance = routing.probs.reshape(-1, num_experts).sum(dim=0)
        load = F.one_hot(routing.experts.reshape(-1), num_experts).sum(dim=0).to(importance.dtype)
        losses.append(coefficient_of_variation_squared(importance) + coefficient_of_variation_squared(load))
    return torch.stack(losses).mean()
