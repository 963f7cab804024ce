-- One row per order id: the idempotency record of charge/refund.
-- 'voided' is a tombstone left by a refund that arrived before any charge, so a charge
-- landing after its compensation (a timed-out request finally arriving) cannot capture
-- money for a cancelled order.
CREATE TABLE payments (
    order_id       UUID PRIMARY KEY,
    payment_id     UUID NOT NULL UNIQUE,
    amount_cents   BIGINT NOT NULL CHECK (amount_cents >= 0),
    card_last4     TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL CHECK (status IN ('captured', 'declined', 'refunded', 'voided')),
    decline_reason TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The ledger: one row per money movement. The unique key makes "never two captures (or
-- two refunds) for one order" a database fact.
CREATE TABLE ledger (
    id           BIGSERIAL PRIMARY KEY,
    order_id     UUID NOT NULL REFERENCES payments (order_id),
    payment_id   UUID NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('capture', 'refund')),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (order_id, kind)
);
