-- One notification per order event; event_id makes redelivered events no-ops.

CREATE TABLE notifications (
    id          bigserial PRIMARY KEY,
    event_id    uuid        NOT NULL UNIQUE,
    event_type  text        NOT NULL,
    order_id    uuid        NOT NULL,
    user_id     text        NOT NULL,
    message     text        NOT NULL,
    payload     jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_by_user ON notifications (user_id, id DESC);
CREATE INDEX notifications_by_order ON notifications (order_id, id);
