-- Events forwarded by the edges' uplinks (alarm transitions, operator actions, connection and
-- configuration changes, audit records). One row per message; msg_id is the edge's
-- Nats-Msg-Id ({edge}-{buffer seq}), so a redelivered or resent message inserts nothing.
CREATE TABLE events (
    msg_id      text PRIMARY KEY,
    stream      text NOT NULL,
    stream_seq  bigint NOT NULL,
    site        text NOT NULL,
    ts          timestamptz NOT NULL,
    ts_ns       bigint NOT NULL,
    source      text NOT NULL,
    asset       text,
    kind        text NOT NULL,
    body        jsonb NOT NULL,
    historical  boolean NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_site_ts ON events (site, ts);
CREATE INDEX events_kind_ts ON events (kind, ts);
