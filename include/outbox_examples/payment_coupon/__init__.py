"""Payment -> cash-back coupon: a legacy outbox table (t_user_coupon_tran) relayed unchanged."""
