-- Catalog and stock. Stock is split into three counters so the harness can check
-- initial stock = available + reserved + sold; CHECKs make "never negative" a database fact,
-- not just an application rule.
CREATE TABLE products (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    available   BIGINT NOT NULL CHECK (available >= 0),
    reserved    BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    sold        BIGINT NOT NULL DEFAULT 0 CHECK (sold >= 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Soft delete: reservations that still hold stock of a deleted product can be
    -- released or committed, so the stock invariant keeps holding.
    deleted_at  TIMESTAMPTZ
);

CREATE INDEX products_name_idx ON products (lower(name)) WHERE deleted_at IS NULL;

-- One row per order id: the idempotency record of the reservation API.
-- 'rejected' remembers an out-of-stock answer so a retry gets the same one;
-- 'released' without items is a tombstone left by a release that arrived first, so a
-- late reserve for a compensated order cannot take stock.
CREATE TABLE reservations (
    order_id         UUID PRIMARY KEY,
    status           TEXT NOT NULL CHECK (status IN ('reserved', 'committed', 'released', 'rejected')),
    total_cents      BIGINT NOT NULL DEFAULT 0,
    reject_product   UUID,
    reject_message   TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE reservation_items (
    order_id    UUID NOT NULL REFERENCES reservations (order_id),
    product_id  UUID NOT NULL REFERENCES products (id),
    quantity    BIGINT NOT NULL CHECK (quantity > 0),
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    PRIMARY KEY (order_id, product_id)
);
