"""Jaro-Winkler similarity in Python, for engines without ``jaro_winkler_similarity`` (PostgreSQL).

The same definition DuckDB uses (rapidfuzz's): Jaro, then a prefix bonus of 0.1 per common leading
character (at most 4) when the Jaro similarity is above 0.7. The entity tests check it against DuckDB.
"""

from __future__ import annotations


def jaro(a: str, b: str) -> float:
    """Jaro similarity of two strings (1.0 identical, 0.0 nothing in common).

    >>> round(jaro("martha", "marhta"), 4)
    0.9444
    """
    la, lb = len(a), len(b)
    if not la or not lb:
        return 0.0  # as DuckDB: an empty string is like nothing, even to another empty string
    if a == b:
        return 1.0
    window = max(max(la, lb) // 2 - 1, 0)
    used_b = [False] * lb
    matches_a = []
    for i, ch in enumerate(a):
        for j in range(max(0, i - window), min(lb, i + window + 1)):
            if not used_b[j] and b[j] == ch:
                used_b[j] = True
                matches_a.append(ch)
                break
    m = len(matches_a)
    if not m:
        return 0.0
    matches_b = [b[j] for j in range(lb) if used_b[j]]
    transpositions = sum(x != y for x, y in zip(matches_a, matches_b, strict=True)) // 2
    return (m / la + m / lb + (m - transpositions) / m) / 3


def jaro_winkler(a: str | None, b: str | None, prefix_weight: float = 0.1) -> float:
    """Jaro-Winkler similarity; ``None`` on either side is 0.

    >>> round(jaro_winkler("martha", "marhta"), 4), jaro_winkler("ann lee", "ann lee"), jaro_winkler(None, "x")
    (0.9611, 1.0, 0.0)
    """
    if a is None or b is None:
        return 0.0
    sim = jaro(a, b)
    if sim <= 0.7:
        return sim
    prefix = 0
    for x, y in zip(a[:4], b[:4], strict=False):
        if x != y:
            break
        prefix += 1
    return sim + prefix * prefix_weight * (1 - sim)
