CREATE INDEX events_subject_idx ON events (subject_type, subject_id);
