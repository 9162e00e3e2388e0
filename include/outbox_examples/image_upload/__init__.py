"""Image upload confirmed by object-store events: S3 notifications -> SQS -> Kafka -> image and part services."""
