"""Memory accounting of the in-memory data mode (``--max-memory-gb``).

Preparing images (read, window, centred FFT, Hartley) makes several temporary arrays the size of the chunk being
prepared, and the ``cryoscape`` command keeps freed memory in the heap for reuse (``cli._process``), so the
resident peak of loading a stack is the prepared stack plus a multiple of the chunk. Chunks are therefore bounded
in bytes (:func:`prep_chunk_images`) and the multiple is counted (:func:`in_memory_bytes`). The pages of the
source stack's memory map are released after every chunk (``data.dataset.HartleyDataset``), so the file is
not resident as well.
"""

from __future__ import annotations

#: Bytes of one float32 value.
FLOAT32_BYTES = 4
#: Float32 bytes of the images read and prepared at a time (loading into memory, estimating the normalisation).
PREP_CHUNK_BYTES = 4 * 2**20
#: Resident memory that preparing chunks adds to the peak, in units of one chunk (:data:`PREP_CHUNK_BYTES`):
#: the temporaries of one chunk (images read, windowed copy, shifted copy, complex FFT input and output, shifted
#: FFT, Hartley result) and what the allocator keeps of them, with a margin. Figures: ``benchmarks/memory_budget.py``
#: (``benchmarks/results/memory_budget.json``); tests/data/test_dataset.py checks a load against the estimate.
PREP_TRANSIENT_CHUNKS = 24


def prep_chunk_images(box_size: int, chunk_size: int | None = None) -> int:
    """Images prepared at a time: at most ``chunk_size`` and :data:`PREP_CHUNK_BYTES` of float32 images, at
    least 1."""
    count = max(1, PREP_CHUNK_BYTES // (box_size**2 * FLOAT32_BYTES))
    return count if chunk_size is None else max(1, min(count, int(chunk_size)))


def in_memory_bytes(n: int, box_size: int) -> int:
    """Peak memory (bytes) the in-memory mode holds for ``n`` images of ``box_size`` pixels.

    The prepared float32 Hartley stack (n·D²·4 bytes) plus :data:`PREP_TRANSIENT_CHUNKS` chunks of
    :func:`prep_chunk_images` images (fewer when the stack is smaller than that).
    """
    image_bytes = box_size**2 * FLOAT32_BYTES
    chunk_bytes = min(n, prep_chunk_images(box_size)) * image_bytes
    return n * image_bytes + PREP_TRANSIENT_CHUNKS * chunk_bytes
