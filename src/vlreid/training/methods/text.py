"""The frozen CLIP text branch shared by the methods: a text encoder fed with token embeddings.

Prompt learning (CLIP-ReID's identity tokens, CLIP-SCGI's pseudo-word) needs the text tower to
accept embeddings instead of token ids: :class:`TextEncoder` does that with the modules of an
open_clip :class:`~open_clip.CLIP`, and :class:`PromptTemplate` builds the embeddings of a sentence
such as ``"A photo of a X X X X person."`` whose ``X`` words are replaced by learned vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import open_clip
import torch
from torch import nn

PLACEHOLDER = "X"


class TextOutput(NamedTuple):
    """Text-tower outputs.

    Attributes:
        features: ``(B, E)`` projected end-of-text features (CLIP's text embedding).
        tokens: ``(B, L, W)`` per-token outputs after ``ln_final`` (before the projection).
    """

    features: torch.Tensor
    tokens: torch.Tensor


class TextEncoder(nn.Module):
    """The text tower of an open_clip CLIP, frozen; gradients still flow to its inputs.

    Args:
        clip_model: The CLIP whose ``token_embedding``, ``positional_embedding``, ``transformer``,
            ``ln_final`` and ``text_projection`` are taken over (shared, not copied).
    """

    def __init__(self, clip_model: open_clip.CLIP) -> None:
        super().__init__()
        self.token_embedding = clip_model.token_embedding
        self.positional_embedding = clip_model.positional_embedding
        self.transformer = clip_model.transformer
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.register_buffer("attn_mask", clip_model.attn_mask, persistent=False)
        self.context_length = int(clip_model.context_length)
        self.width = int(self.token_embedding.weight.shape[1])
        self.requires_grad_(False)

    @property
    def embed_dim(self) -> int:
        """Size of the projected text feature."""
        if self.text_projection is None:
            return self.width
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection.out_features
        return int(self.text_projection.shape[1])

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """CLIP BPE token ids ``(B, context_length)`` on the encoder's device (long texts cut)."""
        token_ids = open_clip.tokenize(list(texts), context_length=self.context_length)
        return token_ids.to(self.token_embedding.weight.device)

    def embed(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``(B, L, W)`` of ``token_ids`` ``(B, L)``."""
        return self.token_embedding(token_ids)

    def forward(self, embeddings: torch.Tensor, token_ids: torch.Tensor) -> TextOutput:
        """Encode token embeddings.

        Args:
            embeddings: ``(B, L, W)`` token embeddings (learned vectors allowed).
            token_ids: ``(B, L)`` or ``(1, L)`` ids of the same sentence(s); the end-of-text token
                (the largest id) marks the pooled position.

        Returns:
            The pooled features ``(B, E)`` and the token outputs ``(B, L, W)``.
        """
        x = embeddings + self.positional_embedding.to(embeddings.dtype)
        if self.transformer.batch_first:
            x = self.transformer(x, attn_mask=self.attn_mask)
        else:
            x = self.transformer(x.transpose(0, 1), attn_mask=self.attn_mask).transpose(0, 1)
        tokens = self.ln_final(x)
        end_positions = token_ids.argmax(dim=-1).expand(tokens.shape[0])
        pooled = tokens[torch.arange(tokens.shape[0], device=tokens.device), end_positions]
        if isinstance(self.text_projection, nn.Linear):
            pooled = self.text_projection(pooled)
        elif self.text_projection is not None:
            pooled = pooled @ self.text_projection
        return TextOutput(pooled, tokens)

    def encode(self, texts: Sequence[str]) -> TextOutput:
        """Encode sentences (tokenize, embed, run the tower)."""
        token_ids = self.tokenize(texts)
        return self(self.embed(token_ids), token_ids)


class PromptTemplate(nn.Module):
    """A fixed sentence whose consecutive ``X`` words are replaced by given vectors.

    The token embeddings before and after the ``X`` run are computed once from the frozen token
    table and kept as buffers (CLIP-ReID's ``token_prefix``/``token_suffix``).

    Args:
        text_encoder: The encoder whose tokenizer and token table are used.
        template: The sentence, e.g. ``"A photo of a X X X X person."``.
    """

    def __init__(self, text_encoder: TextEncoder, template: str) -> None:
        super().__init__()
        token_ids = text_encoder.tokenize([template]).cpu()
        placeholder_id = open_clip.tokenize([PLACEHOLDER])[0, 1].item()
        positions = (token_ids[0] == placeholder_id).nonzero().flatten().tolist()
        if not positions or positions != list(range(positions[0], positions[-1] + 1)):
            raise ValueError(f"template {template!r} needs one run of {PLACEHOLDER!r} words")
        self.template = template
        self.start, self.stop = positions[0], positions[-1] + 1
        with torch.no_grad():
            embedding = text_encoder.embed(token_ids.to(text_encoder.token_embedding.weight.device))
        self.register_buffer("token_ids", token_ids.to(embedding.device), persistent=False)
        self.register_buffer("prefix", embedding[:, : self.start].clone(), persistent=False)
        self.register_buffer("suffix", embedding[:, self.stop :].clone(), persistent=False)

    @property
    def num_placeholders(self) -> int:
        """Number of ``X`` words."""
        return self.stop - self.start

    @property
    def end_position(self) -> int:
        """Index of the end-of-text token."""
        return int(self.token_ids[0].argmax())

    def forward(self, placeholder_embeddings: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings ``(B, L, W)`` from ``(B, num_placeholders, W)`` vectors."""
        batch_size = placeholder_embeddings.shape[0]
        return torch.cat(
            [
                self.prefix.expand(batch_size, -1, -1),
                placeholder_embeddings.to(self.prefix.dtype),
                self.suffix.expand(batch_size, -1, -1),
            ],
            dim=1,
        )
