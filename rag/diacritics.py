"""Vietnamese diacritics put back on a question typed without them.

People often chat in Vietnamese without its diacritics ("tphcm dang hop tac
voi nhung dia phuong nao?").  The embedding model read such questions as
another language: on the external benchmark's Vietnamese questions stripped
of their marks, recall@5 fell from 0.973 to 0.530 among its 513 passages
(``python -m bench external --unaccented``).
pyvi's diacritics model (a CRF shipped in its wheel, so offline) restores
about three words in four; its guesses are wrong often enough that the
question is searched by the mean of both vectors (see
:meth:`rag.retrieval.Retriever.embed`), which measured better than either
alone (bench/README.md §9).
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=256)
def restore_vietnamese(text: str) -> str:
    """``text`` with the diacritics pyvi's model guesses: ``"ha noi"`` → ``"hà nội"``.

    pyvi (and scikit-learn under it) loads in a second or more, so only a
    question that needs it pays for it.
    """
    from pyvi import ViDiac

    return str(ViDiac.add_accents(text))
