"""User registration -> welcome coupon: the event-table pattern (EventPublish / EventProcess)."""
