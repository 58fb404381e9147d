"""Kafka edges of lowdose: the broker launcher, consumer service, publisher and state changelog.

Everything that imports the Kafka client lives here; the optimiser core does not.
"""
