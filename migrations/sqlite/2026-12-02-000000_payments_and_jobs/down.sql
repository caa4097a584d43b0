DROP TABLE jobs;
DROP TABLE provider_events;
DROP TABLE payments;
