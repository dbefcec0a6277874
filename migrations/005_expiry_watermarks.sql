-- The expiry scheduler's progress: per kind of look it takes ("lead:<s>"
-- for the tokens whose notice of lead time s seconds fell due, "lead:0" for
-- the expiry itself), the instant up to which it has dealt with every
-- token. The
-- notices themselves are events in the stream; this only spares the
-- scheduler from looking at tokens again.
CREATE TABLE expiry_watermarks (
    look    text        PRIMARY KEY,
    through timestamptz NOT NULL
);
