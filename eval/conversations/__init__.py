"""Real dialogues as the measure: ReDial recommender turns, mapped to the catalog, ranked by recsage's
chat path and by three baselines (``recsage eval conversations``).

``dialogues`` parses ReDial into recommender turns, ``mapping`` maps ReDial's "Title (Year)" to catalog
ids, ``baselines`` and ``chat_system`` rank the catalog for a turn, ``scoring`` turns ranked lists into
Recall@k with bootstrap intervals and paired tests, ``run`` ties them together.
"""
