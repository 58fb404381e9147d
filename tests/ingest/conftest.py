from tests.support.kafka import kafka_bootstrap, kafka_broker

__all__ = ["kafka_bootstrap", "kafka_broker"]
