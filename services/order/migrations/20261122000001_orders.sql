-- Orders, their durable sagas, the step journal, and the transactional outbox.

CREATE TABLE orders (
    id              uuid PRIMARY KEY,
    user_id         text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled')),
    reason          text,
    items           jsonb       NOT NULL,
    total_cents     bigint,
    idempotency_key text,
    request_hash    text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- Same key + same user = same order (Idempotency-Key).
CREATE UNIQUE INDEX orders_idempotency ON orders (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX orders_by_user ON orders (user_id, created_at DESC);

CREATE TABLE sagas (
    order_id        uuid PRIMARY KEY REFERENCES orders (id),
    state           text        NOT NULL,
    -- Payment method, kept only while the saga may still charge; cleared at the end.
    card            text,
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_owner     text,
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sagas_due ON sagas (next_attempt_at)
    WHERE state NOT IN ('confirmed', 'cancelled');

-- One row per attempt at a step: the saga's journal.
CREATE TABLE saga_steps (
    id         bigserial PRIMARY KEY,
    order_id   uuid        NOT NULL REFERENCES orders (id),
    step       text        NOT NULL,
    outcome    text        NOT NULL,
    from_state text        NOT NULL,
    to_state   text        NOT NULL,
    detail     text,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX saga_steps_by_order ON saga_steps (order_id, id);

CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    event_type   text        NOT NULL,
    order_id     uuid        NOT NULL,
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE published_at IS NULL;
