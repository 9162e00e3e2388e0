"""The relay loop: claim, publish, settle; key holds, backoff and dead-lettering."""
