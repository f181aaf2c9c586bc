"""Hugging Face Hub ids that fail in seconds, not after minutes of download retries.

huggingface_hub retries every file request several times with back-off when the Hub cannot be
reached (about 60 warnings over 147 s for llava-1.5 through transformers, 54 s for open_clip's
ViT-B-16 ``openai`` weights, on a machine without network) before saying that the files are not
cached. :func:`hub_access` asks the Hub once, with a short timeout, before loading: an
unreachable Hub (or ``HF_HUB_OFFLINE=1``) loads from the local cache only (no request at all),
and a repository that does not exist is refused at once. The captioner (LLaVA) and the CLIP
backbone's pretrained weights both go through it.
"""

from __future__ import annotations

import logging

from vlreid.errors import ReIDError

logger = logging.getLogger(__name__)

HUB_TIMEOUT_SECONDS = 5.0
"""How long the one request to the Hub may take before it counts as unreachable."""


def hub_access(
    model_id: str,
    timeout: float = HUB_TIMEOUT_SECONDS,
    instead: str = "pass a local folder written by save_pretrained",
) -> str | None:
    """Why ``model_id`` must be loaded from the local cache only, or None when the Hub answers.

    Args:
        model_id: A Hub repository id, ``owner/name``.
        timeout: Seconds the one request may take.
        instead: What the user can pass instead of a hub id, for the refusals.

    Returns:
        ``"HF_HUB_OFFLINE is set"``, or the network error that the request met; None when the
        Hub knows the repository (or refuses it for a reason that loading will report, such as
        a gated model without a token).

    Raises:
        ReIDError: The id is malformed, or the Hub has no such (public) repository.
    """
    from huggingface_hub import constants, model_info
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        RepositoryNotFoundError,
    )

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    try:
        model_info(model_id, timeout=timeout)
    except HFValidationError as error:
        raise ReIDError(
            f"{model_id!r} is neither a local path nor a Hugging Face Hub id ({error}); {instead}"
        ) from None
    except GatedRepoError:
        return None  # from_pretrained says how to accept the licence / log in
    except RepositoryNotFoundError:
        raise ReIDError(
            f"no model {model_id} on the Hugging Face Hub (a private one needs `hf auth login`); "
            f"check the id, or {instead}"
        ) from None
    except HfHubHTTPError:
        return None  # the Hub answered; loading reports the details
    except Exception as error:  # httpx's connection and timeout errors: the Hub is unreachable
        logger.debug("the Hugging Face Hub did not answer for %s: %r", model_id, error)
        return f"the Hugging Face Hub cannot be reached ({type(error).__name__}: {error})"
    return None
