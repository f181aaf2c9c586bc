"""Changes to open_clip's vision towers that adapt CLIP to ReID inputs (used by the backbone).

- :func:`adapt_vit`: patch stride (overlapping patches) and a positional embedding sized for the
  input grid; :func:`resize_positional_embedding` carries pretrained embeddings over.
- :func:`adapt_resnet`: last stride 1 and an attention-pool embedding for the ``H/16 x W/16`` grid;
  :func:`attention_pool_tokens` returns every output of the attention pool, not only the first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.modified_resnet import AttentionPool2d
from open_clip.transformer import VisionTransformer
from torch import nn

from vlreid.errors import ReIDError

RESNET_OUTPUT_STRIDE = 16  # ModifiedResNet with last stride 1


def resize_positional_embedding(
    embedding: torch.Tensor, source_grid: tuple[int, int], target_grid: tuple[int, int]
) -> torch.Tensor:
    """Bilinearly resize a ``(1 + Hs * Ws, D)`` CLS + grid embedding to ``(1 + Ht * Wt, D)``.

    The CLS row is kept; the grid is interpolated with ``align_corners=False`` and no
    anti-aliasing, as CLIP-ReID's ``resize_pos_embed``.
    """
    cls_row, grid = embedding[:1], embedding[1:]
    if grid.shape[0] != source_grid[0] * source_grid[1]:
        raise ValueError(f"embedding has {grid.shape[0]} grid rows, not {source_grid}")
    if tuple(source_grid) == tuple(target_grid):
        return embedding.clone()
    grid = grid.reshape(1, source_grid[0], source_grid[1], -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(target_grid), mode="bilinear", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(target_grid[0] * target_grid[1], -1)
    return torch.cat([cls_row, grid], dim=0)


def attention_pool_tokens(pool: AttentionPool2d, feature_map: torch.Tensor) -> torch.Tensor:
    """Every output of CLIP's attention pool: ``(B, C, H, W)`` -> ``(B, 1 + H * W, E)``.

    Row 0 (the mean-token query) equals ``pool(feature_map)``; the others are the per-cell outputs.
    """
    x = feature_map.flatten(2).permute(2, 0, 1)  # (HW, B, C)
    x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)
    x = x + pool.positional_embedding[:, None, :].to(x.dtype)
    x, _ = F.multi_head_attention_forward(
        query=x,
        key=x,
        value=x,
        embed_dim_to_check=x.shape[-1],
        num_heads=pool.num_heads,
        q_proj_weight=pool.q_proj.weight,
        k_proj_weight=pool.k_proj.weight,
        v_proj_weight=pool.v_proj.weight,
        in_proj_weight=None,
        in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
        bias_k=None,
        bias_v=None,
        add_zero_attn=False,
        dropout_p=0.0,
        out_proj_weight=pool.c_proj.weight,
        out_proj_bias=pool.c_proj.bias,
        use_separate_proj_weight=True,
        training=pool.training,
        need_weights=False,
    )
    return x.permute(1, 0, 2)


def adapt_vit(
    visual: nn.Module, image_size: tuple[int, int], stride: int | None
) -> tuple[int, int]:
    """Set the patch stride and the positional-embedding grid of an open_clip ViT in place."""
    if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None:
        raise ReIDError("only CLIP-style ViTs (CLS token, no attentional pooler) are supported")
    patch = visual.patch_size[0]
    stride = stride or patch
    height, width = image_size
    if min(height, width) < patch:
        raise ReIDError(f"image_size {image_size} is smaller than the patch size {patch}")
    grid = ((height - patch) // stride + 1, (width - patch) // stride + 1)
    visual.conv1.stride = (stride, stride)
    channels = visual.positional_embedding.shape[1]
    if visual.positional_embedding.shape[0] != grid[0] * grid[1] + 1:
        scale = channels**-0.5
        visual.positional_embedding = nn.Parameter(
            scale * torch.randn(grid[0] * grid[1] + 1, channels)
        )
    visual.grid_size = grid
    return grid


def adapt_resnet(visual: nn.Module, image_size: tuple[int, int]) -> tuple[int, int]:
    """Give an open_clip ModifiedResNet last stride 1 and an attention pool for the input grid."""
    height, width = image_size
    if height % RESNET_OUTPUT_STRIDE or width % RESNET_OUTPUT_STRIDE:
        raise ReIDError(f"ResNet image_size {image_size} must be multiples of 16")
    first_block = visual.layer4[0]
    first_block.avgpool = nn.Identity()  # the anti-aliased stride-2 of CLIP's ResNet
    if first_block.downsample is not None:
        setattr(first_block.downsample, "-1", nn.Identity())
    first_block.stride = 1
    grid = (height // RESNET_OUTPUT_STRIDE, width // RESNET_OUTPUT_STRIDE)
    channels = visual.attnpool.positional_embedding.shape[1]
    visual.attnpool.positional_embedding = nn.Parameter(
        torch.randn(grid[0] * grid[1] + 1, channels) / channels**0.5
    )
    return grid
