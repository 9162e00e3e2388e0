-- Payment -> cash-back coupon (write-up 002). The three tables are the original's, unchanged.
-- User service: t_user (balance) and t_user_coupon_tran (its outbox: status 0 = not sent, 1 = sent),
-- relayed as service `payments`. Activity service: t_coupon, whose unique tid is the idempotency key.
-- The demo keeps both services' tables in one database; in production each has its own.
CREATE TABLE IF NOT EXISTS `t_user` (
    `uid` bigint(20) NOT NULL AUTO_INCREMENT,
    `uname` varchar(100) NOT NULL COMMENT '用户名',
    `money` bigint(100) NOT NULL DEFAULT '0' COMMENT '余额',
    PRIMARY KEY (`uid`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS `t_user_coupon_tran` (
    `tid` bigint(20) NOT NULL AUTO_INCREMENT COMMENT '事务id',
    `uid` bigint(20) NOT NULL COMMENT '用户id',
    `coupon_money` bigint(20) NOT NULL COMMENT '优惠金额',
    `status` int(1) NOT NULL COMMENT '状态',
    PRIMARY KEY (`tid`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The only addition: an index (no column, type or value changes) so the relay's
-- `WHERE status = 0 AND tid > ? ORDER BY tid` does not scan the whole table; `validate` asks for it.
CREATE INDEX `ix_t_user_coupon_tran_status_tid` ON `t_user_coupon_tran` (`status`, `tid`);

CREATE TABLE IF NOT EXISTS `t_coupon` (
    `cid` bigint(20) NOT NULL AUTO_INCREMENT,
    `cmoney` bigint(20) NOT NULL COMMENT '优惠金额',
    `uid` bigint(20) NOT NULL COMMENT '用户id',
    `tid` bigint(20) NOT NULL COMMENT '事务id',
    PRIMARY KEY (`cid`),
    UNIQUE KEY `t_coupon_tid_unique_key` (`tid`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
