DROP INDEX jobs_kind_run_at_idx;
DROP TABLE webhook_dispatch;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
