"""Kafka edges of lowdose: the broker launcher, consumer service, publisher, state changelog and
the store sink (assessments and alerts into the review desk's store, :mod:`streams.sink`).

Everything that imports the Kafka client lives here; the optimiser core does not.
"""
