"""Kafka without the relay's row model: outbound messages, the publisher, one consume loop, topics."""
