CREATE TABLE users (
    id            UUID PRIMARY KEY,
    -- Stored lowercased: one account per address whatever the case it is typed in.
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    -- PHC string (argon2id, parameters and salt included).
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'admin')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
