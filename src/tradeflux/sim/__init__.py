"""Market and trade simulator: realistic, seeded load for the pipeline, its tests and benchmarks.

``market`` random-walks prices on each instrument's tick grid and FX rates; ``trades``
generates the raw bytes of trade events (NEW, AMEND, CANCEL, exact duplicates and
malformed records) at Poisson arrival times; ``producer`` sends both to Kafka.
"""
